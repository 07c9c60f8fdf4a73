package authorizers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ory/ladon"
	"github.com/ory/ladon/compiler"
	"github.com/ory/ladon/manager/memory"
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// policySet is one loaded, validated set of ladon policies. It is never
// modified after it is published, so requests read it without a lock.
type policySet struct {
	warden *ladon.Ladon
	// contextKeys are the condition keys the policies name, sorted.
	contextKeys []string
	size        int
}

// policyStore holds the current policy set and keeps it fresh.
type policyStore struct {
	repositories []string
	current      atomic.Pointer[policySet]
}

// newPolicyStore loads the repositories once and starts the background
// refresher (stopped by deps.Context).
func newPolicyStore(repos []string, interval time.Duration, deps pipeline.Deps) (*policyStore, error) {
	for _, r := range repos {
		if err := fetch.CheckURL(r); err != nil {
			return nil, fmt.Errorf(`key "repositories": %w`, err)
		}
	}
	log := deps.Logger()
	ctx := deps.Context
	if ctx == nil {
		ctx = context.Background()
	}
	// Policy documents are read over the process's connections, following
	// redirects, each read bounded to 10s.
	base, err := deps.Client()
	if err != nil {
		return nil, err
	}
	client := fetch.FollowingRedirects(base)
	client.Timeout = 10 * time.Second
	st := &policyStore{repositories: append([]string(nil), repos...)}

	var docs [][]byte
	load := func(ctx context.Context) ([]byte, error) {
		docs = docs[:0]
		for _, r := range repos {
			b, err := fetch.Read(ctx, client, r)
			if err != nil {
				return nil, fmt.Errorf("ladon policies %s: %w", fetch.Redact(r), err)
			}
			docs = append(docs, b)
		}
		return bytes.Join(docs, []byte{0}), nil
	}
	apply := func([]byte) error {
		set, err := buildPolicySet(repos, docs)
		if err != nil {
			return err
		}
		st.current.Store(set)
		return nil
	}

	initial, err := load(ctx)
	if err != nil {
		return nil, err
	}
	if err := apply(initial); err != nil {
		return nil, err
	}
	log.Info("ladon policies loaded", "policies", st.current.Load().size)
	go fetch.Poll(ctx, interval, initial, load, func(b []byte) error {
		if err := apply(b); err != nil {
			return err
		}
		log.Info("ladon policies reloaded", "policies", st.current.Load().size)
		return nil
	}, func(err error) {
		log.Error("ladon policies not reloaded; the last good set stays in force", "error", err)
	})
	return st, nil
}

// policyDoc is one policy as written in a repository. Unknown keys are
// errors, so a misspelt "efect" or "condtions" cannot silently widen access.
type policyDoc struct {
	ID          string                  `json:"id"`
	Description string                  `json:"description"`
	Subjects    []string                `json:"subjects"`
	Resources   []string                `json:"resources"`
	Actions     []string                `json:"actions"`
	Effect      string                  `json:"effect"`
	Conditions  map[string]conditionDoc `json:"conditions"`
	Meta        json.RawMessage         `json:"meta"`
}

type conditionDoc struct {
	Type    string          `json:"type"`
	Options json.RawMessage `json:"options"`
}

// buildPolicySet parses and validates every document and builds a warden
// over the union of their policies.
func buildPolicySet(names []string, docs [][]byte) (*policySet, error) {
	mgr := memory.NewMemoryManager()
	keys := map[string]bool{}
	seen := map[string]string{}
	size := 0
	for i, doc := range docs {
		name := fetch.Redact(names[i])
		list, err := parsePolicyList(doc)
		if err != nil {
			return nil, fmt.Errorf("ladon policies %s: %w", name, err)
		}
		for j, raw := range list {
			p, err := compilePolicy(raw)
			if err != nil {
				return nil, fmt.Errorf("ladon policies %s: policy %d: %w", name, j, err)
			}
			if prev, dup := seen[p.ID]; dup {
				return nil, fmt.Errorf("ladon policies %s: policy id %q is also defined in %s", name, p.ID, prev)
			}
			seen[p.ID] = name
			for k := range p.Conditions {
				keys[k] = true
			}
			if err := mgr.Create(context.Background(), p); err != nil {
				return nil, fmt.Errorf("ladon policies %s: policy %q: %w", name, p.ID, err)
			}
			size++
		}
	}
	ks := make([]string, 0, len(keys))
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return &policySet{
		warden: &ladon.Ladon{
			Manager:     mgr,
			Matcher:     ladon.NewRegexpMatcher(512),
			AuditLogger: &ladon.AuditLoggerNoOp{},
			Metric:      &ladon.MetricNoOp{},
		},
		contextKeys: ks,
		size:        size,
	}, nil
}

// parsePolicyList reads a JSON or YAML list into one raw JSON value per
// policy.
func parsePolicyList(doc []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] != '[' {
		var v any
		if err := yaml.Unmarshal(trimmed, &v); err != nil {
			return nil, fmt.Errorf("not a JSON or YAML document: %w", err)
		}
		if v == nil {
			return nil, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("YAML document has no JSON form: %w", err)
		}
		trimmed = b
	}
	var list []json.RawMessage
	if err := json.Unmarshal(trimmed, &list); err != nil {
		return nil, errors.New("the document must be a list of policies")
	}
	return list, nil
}

// compilePolicy validates one policy strictly and turns it into ladon's
// type: effect allow|deny, non-empty subjects/resources/actions, patterns
// that compile, known condition types with known options.
func compilePolicy(raw json.RawMessage) (*ladon.DefaultPolicy, error) {
	var d policyDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	if d.ID == "" {
		return nil, errors.New(`"id" is required`)
	}
	if d.Effect != ladon.AllowAccess && d.Effect != ladon.DenyAccess {
		return nil, fmt.Errorf("policy %q: effect must be %q or %q, got %q", d.ID, ladon.AllowAccess, ladon.DenyAccess, d.Effect)
	}
	for field, list := range map[string][]string{"subjects": d.Subjects, "resources": d.Resources, "actions": d.Actions} {
		if len(list) == 0 {
			return nil, fmt.Errorf("policy %q: %s must list at least one entry (use \"<.*>\" for any)", d.ID, field)
		}
		for _, pattern := range list {
			if strings.ContainsRune(pattern, '<') {
				if _, err := compiler.CompileRegex(pattern, '<', '>'); err != nil {
					return nil, fmt.Errorf("policy %q: %s pattern %q: %v", d.ID, field, pattern, err)
				}
			}
		}
	}
	conds := ladon.Conditions{}
	for key, cd := range d.Conditions {
		c, err := compileCondition(cd)
		if err != nil {
			return nil, fmt.Errorf("policy %q: condition %q: %w", d.ID, key, err)
		}
		conds[key] = c
	}
	return &ladon.DefaultPolicy{
		ID:          d.ID,
		Description: d.Description,
		Subjects:    d.Subjects,
		Resources:   d.Resources,
		Actions:     d.Actions,
		Effect:      d.Effect,
		Conditions:  conds,
		Meta:        d.Meta,
	}, nil
}

func compileCondition(cd conditionDoc) (ladon.Condition, error) {
	factory, ok := ladon.ConditionFactories[cd.Type]
	if !ok {
		known := make([]string, 0, len(ladon.ConditionFactories))
		for k := range ladon.ConditionFactories {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown type %q (known: %s)", cd.Type, strings.Join(known, ", "))
	}
	c := factory()
	if opts := bytes.TrimSpace(cd.Options); len(opts) > 0 && !bytes.Equal(opts, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(opts))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("options: %w", err)
		}
	}
	// Conditions that fail silently on a bad option (and so never match, or
	// match the empty string) are checked here instead.
	switch t := c.(type) {
	case *ladon.CIDRCondition:
		if _, _, err := net.ParseCIDR(t.CIDR); err != nil {
			return nil, fmt.Errorf("options.cidr %q is not a CIDR range", t.CIDR)
		}
	case *ladon.StringMatchCondition:
		if _, err := regexp.Compile(t.Matches); err != nil {
			return nil, fmt.Errorf("options.matches: %v", err)
		}
	case *ladon.StringEqualCondition:
		if t.Equals == "" {
			return nil, errors.New("options.equals must not be empty")
		}
	}
	return c, nil
}
