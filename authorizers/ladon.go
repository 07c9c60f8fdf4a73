package authorizers

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ory/ladon"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// LadonConfig configures the `ladon` authorizer, which evaluates ladon
// access control policies inside portcullis.
//
// Repositories and RefreshInterval belong to the global config
// (authorizers.ladon.config): every rule shares one policy set, loaded once
// per process. The other keys are per rule (and may have global defaults).
type LadonConfig struct {
	// Repositories lists where the policies are: file://, http(s):// or
	// inline:// (base64) locations, each holding a JSON or YAML list of
	// ladon policies. The policy set is the union of all of them.
	Repositories []string `json:"repositories,omitempty"`
	// RefreshInterval is how often the repositories are read again; a
	// changed set replaces the old one, a set that fails to load or validate
	// is reported and the last good set keeps deciding. Default 5s.
	RefreshInterval pipeline.Duration `json:"refresh_interval,omitempty"`

	// RequiredAction is a template for the request's action, e.g. "connect"
	// or "{{ .MatchContext.Method }}". Required.
	RequiredAction string `json:"required_action,omitempty"`
	// RequiredResource is a template for the resource, e.g.
	// `rn:chat:{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}`.
	// Required.
	RequiredResource string `json:"required_resource,omitempty"`
	// Subject is a template for the subject; default "{{ print .Subject }}".
	Subject string `json:"subject,omitempty"`
	// Context adds entries to the context that policy conditions read,
	// each a template rendered with the session. They override the built-in
	// entries (see [NewLadon]).
	Context map[string]string `json:"context,omitempty"`
}

// SetDefaults sets the subject template and the refresh interval.
func (c *LadonConfig) SetDefaults() {
	c.Subject = "{{ print .Subject }}"
	c.RefreshInterval = pipeline.Duration(5 * time.Second)
}

// Validate requires the action and resource templates.
func (c *LadonConfig) Validate() error {
	switch {
	case strings.TrimSpace(c.RequiredAction) == "":
		return pipeline.Required("required_action")
	case strings.TrimSpace(c.RequiredResource) == "":
		return pipeline.Required("required_resource")
	}
	return nil
}

func (c *LadonConfig) validateGlobal() error {
	if len(c.Repositories) == 0 {
		return errors.New(`key "repositories": at least one policy repository is required`)
	}
	if c.RefreshInterval.D() < 10*time.Millisecond {
		return errors.New(`key "refresh_interval": must be at least 10ms`)
	}
	return nil
}

// NewLadon makes the `ladon` authorizer's rule builder from its global
// config. It loads the policy
// repositories once (a set that does not load fails start-up: there is no
// last good set yet), then keeps them fresh in the background until the
// process context ends.
//
// A request is allowed when a policy allows the rendered (subject, action,
// resource) and no matching policy denies it; otherwise it is denied with
// 403. Policy conditions read these context entries:
//
//   - remote_ip: the client address of the connection (r.RemoteAddr; a
//     forwarded-for header is not trusted), for CIDRCondition;
//   - subject and method;
//   - extra.<path>: a value of the session's Extra at a dot-separated path
//     (extra.identity.traits.email);
//   - traits.<path>: a Kratos identity trait, the same as
//     extra.identity.traits.<path>;
//   - any key the rule's `context` templates define.
//
// Only the keys that some policy's conditions name are computed.
func NewLadon(g *LadonConfig, deps pipeline.Deps) (pipeline.RuleBuilder[LadonConfig, pipeline.Authorizer], error) {
	if err := g.validateGlobal(); err != nil {
		return nil, err
	}
	store, err := newPolicyStore(g.Repositories, g.RefreshInterval.D(), deps)
	if err != nil {
		return nil, err
	}
	return &ladonBuilder{store: store}, nil
}

type ladonBuilder struct {
	store *policyStore
}

func (b *ladonBuilder) Build(c *LadonConfig) (pipeline.Authorizer, error) {
	if !sameStrings(c.Repositories, b.store.repositories) {
		return nil, errors.New(`key "repositories": policy repositories are set once, in the global config (authorizers.ladon.config), not per rule`)
	}
	a := &ladonAuthorizer{store: b.store}
	var err error
	if a.action, err = pipeline.ParseTemplate("required_action", c.RequiredAction); err != nil {
		return nil, err
	}
	if a.resource, err = pipeline.ParseTemplate("required_resource", c.RequiredResource); err != nil {
		return nil, err
	}
	if a.subject, err = pipeline.ParseTemplate("subject", c.Subject); err != nil {
		return nil, err
	}
	if a.context, err = pipeline.ParseTemplates("context", c.Context); err != nil {
		return nil, err
	}
	return a, nil
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type ladonAuthorizer struct {
	store    *policyStore
	action   *pipeline.Template
	resource *pipeline.Template
	subject  *pipeline.Template
	context  []pipeline.NamedTemplate
}

var _ pipeline.Authorizer = (*ladonAuthorizer)(nil)

func (a *ladonAuthorizer) Authorize(r *http.Request, s *pipeline.Session) error {
	set := a.store.current.Load()
	req := &ladon.Request{Context: ladon.Context{}}
	var err error
	if req.Action, err = a.action.Execute(s); err != nil {
		return pipeline.NewError(http.StatusInternalServerError, "ladon authorizer failed", fmt.Errorf("required_action: %w", err))
	}
	if req.Resource, err = a.resource.Execute(s); err != nil {
		return pipeline.NewError(http.StatusInternalServerError, "ladon authorizer failed", fmt.Errorf("required_resource: %w", err))
	}
	if req.Subject, err = a.subject.Execute(s); err != nil {
		return pipeline.NewError(http.StatusInternalServerError, "ladon authorizer failed", fmt.Errorf("subject: %w", err))
	}
	for _, k := range set.contextKeys {
		if v, ok := builtinContext(k, r, s); ok {
			req.Context[k] = v
		}
	}
	for _, ct := range a.context {
		v, err := ct.Execute(s)
		if err != nil {
			return pipeline.NewError(http.StatusInternalServerError, "ladon authorizer failed", fmt.Errorf("context.%s: %w", ct.Name, err))
		}
		req.Context[ct.Name] = v
	}
	err = set.warden.IsAllowed(r.Context(), req)
	if err == nil {
		return nil
	}
	if ladonStatus(err) == http.StatusForbidden {
		return pipeline.Forbidden("access denied by policy", nil)
	}
	return pipeline.NewError(http.StatusInternalServerError, "ladon authorizer failed", err)
}

// ladonStatus digs the HTTP status out of ladon's errors, which are wrapped
// with an older errors package that has Cause but not Unwrap.
func ladonStatus(err error) int {
	for err != nil {
		if sc, ok := err.(interface{ StatusCode() int }); ok {
			return sc.StatusCode()
		}
		switch e := err.(type) {
		case interface{ Cause() error }:
			err = e.Cause()
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return 0
		}
	}
	return 0
}

// builtinContext computes one built-in context entry.
func builtinContext(key string, r *http.Request, s *pipeline.Session) (any, bool) {
	switch {
	case key == "remote_ip":
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		return host, host != ""
	case key == "subject":
		return s.Subject, true
	case key == "method":
		return r.Method, true
	case strings.HasPrefix(key, "extra."):
		return lookupPath(s.Extra, strings.TrimPrefix(key, "extra."))
	case strings.HasPrefix(key, "traits."):
		return lookupPath(s.Extra, "identity.traits."+strings.TrimPrefix(key, "traits."))
	}
	return nil, false
}

// lookupPath follows a dot-separated path through nested maps.
func lookupPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}
