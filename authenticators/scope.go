package authenticators

// OAuth 2.0 scopes and JWT/introspection claims, checked the way
// Oathkeeper's jwt and oauth2_introspection authenticators do.

import (
	"fmt"
	"slices"
	"strings"
)

// scopeStrategy decides whether the granted scopes satisfy one required
// scope.
type scopeStrategy func(granted []string, required string) bool

// scopeStrategyNamed returns the strategy of a `scope_strategy` name:
//
//   - exact: the required scope is granted verbatim.
//   - hierarchic: a granted scope also covers its dot-separated children
//     ("photos" covers "photos.read").
//   - wildcard: a granted "*" segment stands for any one segment
//     ("photos.*" covers "photos.read", not "photos" nor "photos.a.b").
//   - none: no scope check (a nil strategy); it cannot be combined with
//     required_scope.
//
// ok is false for any other name.
func scopeStrategyNamed(name string) (s scopeStrategy, ok bool) {
	switch name {
	case "exact":
		return exactScope, true
	case "hierarchic":
		return hierarchicScope, true
	case "wildcard":
		return wildcardScope, true
	case "none":
		return nil, true
	}
	return nil, false
}

// validScopeStrategy rejects a scope_strategy that names no strategy; ""
// is valid (the handler's default).
func validScopeStrategy(name string) error {
	if _, ok := scopeStrategyNamed(name); !ok && name != "" {
		return fmt.Errorf("scope_strategy: unknown strategy %q (one of exact, hierarchic, wildcard, none)", name)
	}
	return nil
}

// resolveScopeStrategy returns the strategy for name given the required scopes: with
// required scopes and no name it is exact; "none" with required scopes is
// an error, because it would silently skip the check.
func resolveScopeStrategy(name string, required []string) (scopeStrategy, error) {
	if name == "" {
		if len(required) == 0 {
			return nil, nil
		}
		name = "exact"
	}
	s, ok := scopeStrategyNamed(name)
	if !ok {
		return nil, validScopeStrategy(name)
	}
	if s == nil && len(required) > 0 {
		return nil, fmt.Errorf("scope_strategy: %q cannot check required_scope; choose exact, hierarchic or wildcard", name)
	}
	return s, nil
}

// exactScope is the exact strategy.
func exactScope(granted []string, required string) bool {
	return slices.Contains(granted, required)
}

// hierarchicScope is the hierarchic strategy.
func hierarchicScope(granted []string, required string) bool {
	for _, g := range granted {
		if g == "" {
			continue
		}
		if g == required || strings.HasPrefix(required, g+".") {
			return true
		}
	}
	return false
}

// wildcardScope is the wildcard strategy.
func wildcardScope(granted []string, required string) bool {
	need := strings.Split(required, ".")
	for _, g := range granted {
		if g == required {
			return true
		}
		have := strings.Split(g, ".")
		if len(have) != len(need) {
			continue
		}
		ok := true
		for i := range have {
			if have[i] == need[i] || (have[i] == "*" && need[i] != "") {
				continue
			}
			ok = false
			break
		}
		if ok {
			return true
		}
	}
	return false
}

// checkScopes returns an error naming the first required scope the strategy does
// not find in granted.
func checkScopes(s scopeStrategy, granted, required []string) error {
	if s == nil {
		return nil
	}
	for _, r := range required {
		if !s(granted, r) {
			return fmt.Errorf("missing required scope %q", r)
		}
	}
	return nil
}

// scopesFromClaims returns the granted scopes of a claim set: the first of
// "scp", "scope", "scopes", either a space-separated string or a list.
func scopesFromClaims(claims map[string]any) []string {
	for _, k := range []string{"scp", "scope", "scopes"} {
		v, ok := claims[k]
		if !ok {
			continue
		}
		return claimStrings(v, true)
	}
	return nil
}

// claimStrings converts a claim to a list of strings: a list keeps its string
// members; a string is one member, or split on spaces when split is true.
func claimStrings(v any, split bool) []string {
	switch t := v.(type) {
	case string:
		if split {
			return strings.Fields(t)
		}
		if t == "" {
			return nil
		}
		return []string{t}
	case []string:
		return t
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// checkAudience requires every target audience to be in the token's aud.
func checkAudience(aud, target []string) error {
	for _, t := range target {
		if !slices.Contains(aud, t) {
			return fmt.Errorf("token audience does not include %q", t)
		}
	}
	return nil
}

// checkIssuer requires the issuer to be one of the trusted ones, when any
// are configured.
func checkIssuer(iss string, trusted []string) error {
	if len(trusted) > 0 && !slices.Contains(trusted, iss) {
		return fmt.Errorf("token issuer %q is not trusted", iss)
	}
	return nil
}
