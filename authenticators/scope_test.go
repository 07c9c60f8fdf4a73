package authenticators

import "testing"

func TestScopeStrategies(t *testing.T) {
	tests := []struct {
		strategy string
		granted  []string
		required string
		want     bool
	}{
		{"exact", []string{"photos.read"}, "photos.read", true},
		{"exact", []string{"photos"}, "photos.read", false},
		{"hierarchic", []string{"photos"}, "photos.read", true},
		{"hierarchic", []string{"photos"}, "photos", true},
		{"hierarchic", []string{"photos.read"}, "photos", false},
		{"hierarchic", []string{"photo"}, "photos.read", false},
		{"wildcard", []string{"photos.*"}, "photos.read", true},
		{"wildcard", []string{"photos.*"}, "photos", false},
		{"wildcard", []string{"photos.*"}, "photos.a.b", false},
		{"wildcard", []string{"*.read"}, "videos.read", true},
		{"wildcard", []string{"photos.read"}, "photos.read", true},
	}
	for _, tt := range tests {
		strategy, _ := scopeStrategyNamed(tt.strategy)
		got := strategy(tt.granted, tt.required)
		if got != tt.want {
			t.Errorf("%s(%q, %q) = %v, want %v", tt.strategy, tt.granted, tt.required, got, tt.want)
		}
	}
}

func TestResolveScopeStrategy(t *testing.T) {
	if s, err := resolveScopeStrategy("", nil); err != nil || s != nil {
		t.Errorf("resolveScopeStrategy(\"\", nil) = %v, %v; want nil strategy", s != nil, err)
	}
	if s, err := resolveScopeStrategy("", []string{"a"}); err != nil || s == nil || !s([]string{"a"}, "a") {
		t.Errorf("resolveScopeStrategy(\"\", [a]) should default to exact, err %v", err)
	}
	if _, err := resolveScopeStrategy("none", []string{"a"}); err == nil {
		t.Error("resolveScopeStrategy(none, [a]) must be an error: the check would be skipped")
	}
	if _, err := resolveScopeStrategy("fuzzy", nil); err == nil {
		t.Error("resolveScopeStrategy(fuzzy) must be an error")
	}
}

func TestScopesFromClaims(t *testing.T) {
	tests := []struct {
		claims map[string]any
		want   []string
	}{
		{map[string]any{"scp": []any{"a", "b"}}, []string{"a", "b"}},
		{map[string]any{"scope": "a b  c"}, []string{"a", "b", "c"}},
		{map[string]any{"scopes": []any{"x", 3}}, []string{"x"}},
		{map[string]any{}, nil},
	}
	for _, tt := range tests {
		got := scopesFromClaims(tt.claims)
		if len(got) != len(tt.want) {
			t.Errorf("scopesFromClaims(%v) = %q, want %q", tt.claims, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("scopesFromClaims(%v) = %q, want %q", tt.claims, got, tt.want)
			}
		}
	}
	if err := checkScopes(exactScope, []string{"a"}, []string{"a", "b"}); err == nil {
		t.Error("checkScopes must report the missing scope b")
	}
	if err := checkAudience([]string{"x", "y"}, []string{"y"}); err != nil {
		t.Errorf("checkAudience: %v", err)
	}
	if err := checkAudience([]string{"x"}, []string{"x", "y"}); err == nil {
		t.Error("checkAudience must require every target audience")
	}
	if err := checkIssuer("evil", []string{"good"}); err == nil {
		t.Error("checkIssuer must reject an untrusted issuer")
	}
}
