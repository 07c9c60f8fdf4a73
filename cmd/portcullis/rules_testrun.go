package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/docsyntax"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/proxy"
	"github.com/portcullis-proxy/portcullis/rules"
)

func newRulesTest() *cobra.Command {
	var file string
	var explain bool
	cmd := &cobra.Command{
		Use:   "test CASES.yml [RULES...]",
		Short: "Check access rules against a file of requests and expected outcomes",
		Long: `Evaluate every case of CASES.yml (YAML or JSON) against the access rules with
the decision pipeline, offline: no listener is opened, each request is answered
by the same code as the decision API (/decisions). A case names a request and
what must come of it:

  - name: a signed-in user reaches the dashboard
    request:
      method: GET                       # default GET
      url: https://app.example/dashboard
      headers: {Cookie: "ory_kratos_session=..."}
      body: ""                          # for handlers that read the body
      remote_addr: 203.0.113.7          # client address (default 192.0.2.1)
    expect:
      status: 200                       # the decision: 200 allowed, else the error answer
      rule: dashboard                   # "" means no rule may match
      subject: 9f0c...                  # the subject the pipeline found
      headers:                          # answer headers (mutators' on 200); null: absent
        X-User: 9f0c...
        X-Debug: null
      body_contains: ""                 # a substring of the answer body

The rules are the RULES files given, or else the configuration's
access_rules.repositories. Handlers are enabled and configured by -c as for
'serve'; without -c every handler that needs no global config is enabled.
Handlers that ask an identity provider or a remote authorizer do so for real,
so a case's credential must be valid where the test runs.

Prints each case and, for a failing one, what differed; exits 1 when any case
fails or the files do not load, 0 otherwise. With --explain every case is
followed by how the decision was made: the rule that matched (or each rule
and why it did not), each authenticator, the authorizer and each mutator in
order with what it found and decided, and the headers the mutators would set
(values that may be credentials redacted).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cases, err := readCases(args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return errors.New("cases are not valid")
			}
			set, err := loadRulesForTest(file, args[1:])
			if err != nil {
				printLoadError(cmd.ErrOrStderr(), err)
				return errors.New("rules are not valid")
			}
			failed := runCases(cmd.OutOrStdout(), set, cases, explain)
			fmt.Fprintf(cmd.OutOrStdout(), "%d of %d cases passed\n", len(cases)-failed, len(cases))
			if failed > 0 {
				return fmt.Errorf("%d of %d cases failed", failed, len(cases))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file whose handler settings (and, without RULES, repositories) apply")
	cmd.Flags().BoolVar(&explain, "explain", false, "after each case, print how the decision was made, stage by stage")
	return cmd
}

// testCase is one entry of a cases file.
type testCase struct {
	Name    string      `yaml:"name"`
	Request caseRequest `yaml:"request"`
	Expect  caseExpect  `yaml:"expect"`

	pos string // file:line of the case
}

// caseRequest describes the request a case sends through the pipeline.
type caseRequest struct {
	Method     string            `yaml:"method"`
	URL        string            `yaml:"url"`
	Headers    map[string]string `yaml:"headers"`
	Body       string            `yaml:"body"`
	RemoteAddr string            `yaml:"remote_addr"`
}

// caseExpect lists what a case checks; absent keys are not checked.
type caseExpect struct {
	Status  int                `yaml:"status"`
	Rule    *string            `yaml:"rule"`
	Subject *string            `yaml:"subject"`
	Headers map[string]*string `yaml:"headers"`
	// BodyContains is a substring the answer's body must contain (for a
	// denial, the error document).
	BodyContains string `yaml:"body_contains"`
}

func (e caseExpect) empty() bool {
	return e.Status == 0 && e.Rule == nil && e.Subject == nil && len(e.Headers) == 0 && e.BodyContains == ""
}

// caseKeys are the keys a cases file may use, by block; anything else is
// an error (a typo such as "statuss" must not silently check nothing).
var caseKeys = map[string][]string{
	"":        {"expect", "name", "request"},
	"request": {"body", "headers", "method", "remote_addr", "url"},
	"expect":  {"body_contains", "headers", "rule", "status", "subject"},
}

// readCases parses a cases file strictly and reports every problem at
// once, each as file:line[:col]: unknown keys, values of the wrong type,
// and cases that are incomplete or check nothing.
func readCases(path string) ([]testCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if docsyntax.IsJSON(path) {
		if e := docsyntax.CheckJSON(path, data); e != nil {
			return nil, e
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, docsyntax.Locate(path, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	root := doc.Content[0]
	if root.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: expected a list of cases", path, root.Line)
	}
	var list []testCase
	var errs []string
	for i, item := range root.Content {
		var tc testCase
		tc.pos = fmt.Sprintf("%s:%d", path, item.Line)
		label := fmt.Sprintf("case %d", i+1)
		if item.Kind != yaml.MappingNode {
			errs = append(errs, fmt.Sprintf("%s: %s: expected a mapping with request and expect", tc.pos, label))
			continue
		}
		if n := mapValue(item, "name"); n != nil && n.Kind == yaml.ScalarNode {
			label = fmt.Sprintf("case %q", n.Value)
		}
		bad := unknownCaseKeys(path, label, item)
		if err := item.Decode(&tc); err != nil {
			bad = append(bad, yamlErrors(path, label, err)...)
		}
		tc.pos = fmt.Sprintf("%s:%d", path, item.Line)
		if len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		if tc.Name == "" {
			tc.Name = strings.TrimSpace(strings.ToUpper(tc.Request.Method) + " " + tc.Request.URL)
		}
		if err := tc.check(); err != nil {
			errs = append(errs, fmt.Sprintf("%s: case %q: %v", tc.pos, tc.Name, err))
			continue
		}
		list = append(list, tc)
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return list, nil
}

// unknownCaseKeys reports, with line and column, every key of a case (and
// of its request and expect blocks) that caseKeys does not list.
func unknownCaseKeys(path, label string, item *yaml.Node) []string {
	var out []string
	check := func(block string, n *yaml.Node) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !slices.Contains(caseKeys[block], k.Value) {
				where := "the case"
				if block != "" {
					where = block
				}
				out = append(out, fmt.Sprintf("%s:%d:%d: %s: unknown key %q in %s (known: %s)",
					path, k.Line, k.Column, label, k.Value, where, strings.Join(caseKeys[block], ", ")))
			}
		}
	}
	check("", item)
	check("request", mapValue(item, "request"))
	check("expect", mapValue(item, "expect"))
	return out
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var (
	yamlLineRef  = regexp.MustCompile(`^\s*line (\d+): (.*)$`)
	yamlTypeName = regexp.MustCompile(` in type main\.\w+`)
)

// yamlErrors turns a case's decoding error into file:line: message lines.
// yaml.v3 reports type mismatches only as text ("line N: cannot
// unmarshal …"), so the line is read from it.
func yamlErrors(path, label string, err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []string{fmt.Sprintf("%s: %s: %v", path, label, err)}
	}
	var lines []string
	for _, e := range te.Errors {
		e = yamlTypeName.ReplaceAllString(e, "")
		if m := yamlLineRef.FindStringSubmatch(e); m != nil {
			lines = append(lines, fmt.Sprintf("%s:%s: %s: %s", path, m[1], label, m[2]))
		} else {
			lines = append(lines, fmt.Sprintf("%s: %s: %s", path, label, e))
		}
	}
	return lines
}

func (tc *testCase) check() error {
	if tc.Request.URL == "" {
		return errors.New("request.url is required")
	}
	u, err := url.Parse(tc.Request.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("request.url: %q is not an absolute http(s) URL", tc.Request.URL)
	}
	if tc.Request.Method == "" {
		tc.Request.Method = http.MethodGet
	}
	tc.Request.Method = strings.ToUpper(tc.Request.Method)
	if a := tc.Request.RemoteAddr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			if net.ParseIP(a) == nil {
				return fmt.Errorf("request.remote_addr: %q is not an IP address", a)
			}
			tc.Request.RemoteAddr = net.JoinHostPort(a, "1234")
		}
	}
	if tc.Expect.empty() {
		return errors.New("expect checks nothing: give status, rule, subject, headers or body_contains")
	}
	return nil
}

// loadRulesForTest loads the configuration (for its handlers) and the rule
// files, or the configuration's repositories when none are given.
func loadRulesForTest(cfgFile string, files []string) (*rules.Set, error) {
	if len(files) == 0 {
		if cfgFile == "" {
			return nil, errors.New("no rules: give RULES files or a configuration (-c) with access_rules.repositories")
		}
		cfg, err := config.Load(cfgFile, os.Environ(), registry.HandlerNames(registry.NewCatalog()))
		if err != nil {
			return nil, err
		}
		files = cfg.AccessRules.Repositories
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: access_rules.repositories is empty; give RULES files", cfgFile)
		}
	}
	comp, err := validationCompiler(cfgFile, true)
	if err != nil {
		return nil, err
	}
	return rules.LoadFiles(context.Background(), comp, files)
}

func printLoadError(w io.Writer, err error) {
	var es rules.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

// outcome is what the decision pipeline made of one case.
type outcome struct {
	status  int
	rule    string
	subject string
	header  http.Header
	body    string
}

// runCases answers each case with an in-process decision API over set and
// prints the result; it returns the number of failed cases.
func runCases(w io.Writer, set *rules.Set, cases []testCase, explain bool) int {
	capture := &decisionCapture{}
	log := logrus.New()
	log.Out = io.Discard
	log.AddHook(capture)
	h := proxy.NewAPI(proxy.APIOptions{DecisionOptions: proxy.DecisionOptions{Rules: fixedRules{set}, Log: log, Observer: capture}})
	failed := 0
	for _, tc := range cases {
		got := evaluate(h, capture, tc)
		diffs := tc.Expect.diff(got)
		if len(diffs) == 0 {
			fmt.Fprintf(w, "ok    %s\n", tc.Name)
			if explain {
				printExplanation(w, explainCase(set, tc))
			}
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %s (%s)\n", tc.Name, tc.pos)
		fmt.Fprintf(w, "      %s %s\n", tc.Request.Method, tc.Request.URL)
		for _, d := range diffs {
			fmt.Fprintf(w, "      %s\n", d)
		}
		if b := strings.TrimSpace(got.body); b != "" {
			fmt.Fprintf(w, "      answer: %s\n", truncate(b, 300))
		}
		if explain {
			printExplanation(w, explainCase(set, tc))
		}
	}
	return failed
}

// explainCase runs the case's request through the decision path again,
// described exactly as evaluate describes it to /decisions, and explains it.
func explainCase(set *rules.Set, tc testCase) proxy.Explanation {
	return proxy.ExplainDecision(set, decisionCall(tc))
}

// printExplanation writes an explanation indented under its case.
func printExplanation(w io.Writer, ex proxy.Explanation) {
	fmt.Fprintf(w, "      explain %s %s", ex.Method, ex.URL)
	if len(ex.Query) > 0 {
		fmt.Fprintf(w, " (query parameters: %s)", strings.Join(ex.Query, ", "))
	}
	fmt.Fprintln(w)
	matched := 0
	for _, c := range ex.Candidates {
		if c.Matches {
			matched++
		}
	}
	switch {
	case ex.Rule != "":
		fmt.Fprintf(w, "        rule     %s\n", ex.Rule)
	case len(ex.Candidates) > 0 && matched == 0:
		fmt.Fprintln(w, "        rule     none matched:")
	case matched > 1:
		fmt.Fprintf(w, "        rule     %d rules matched (exactly one must):\n", matched)
	}
	if ex.Rule == "" {
		for _, c := range ex.Candidates {
			fmt.Fprintf(w, "          %-16s %s\n", c.Rule, c.Why)
		}
	}
	for i, st := range ex.Stages {
		line := fmt.Sprintf("        %d. %-13s %-20s %s", i+1, st.Stage, st.Handler, st.Outcome)
		if st.Detail != "" {
			line += ": " + st.Detail
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "        decision %s, status %d", ex.Decision, ex.Status)
	if ex.Subject != "" {
		fmt.Fprintf(w, ", subject %q", ex.Subject)
	}
	if ex.Reason != "" {
		fmt.Fprintf(w, ": %s", ex.Reason)
	}
	fmt.Fprintln(w)
	for _, k := range slices.Sorted(maps.Keys(ex.Headers)) {
		fmt.Fprintf(w, "        header   %s: %s\n", k, ex.Headers[k])
	}
	for _, k := range slices.Sorted(maps.Keys(ex.Cookies)) {
		fmt.Fprintf(w, "        cookie   %s=%s\n", k, ex.Cookies[k])
	}
}

// evaluate sends the case's request to the decision API as a proxy in
// front of portcullis would describe it: X-Forwarded-Method, -Proto, -Host
// and -Uri, with the case's own headers.
func evaluate(h http.Handler, capture *decisionCapture, tc testCase) outcome {
	r := decisionCall(tc)
	rec := httptest.NewRecorder()
	capture.reset()
	h.ServeHTTP(rec, r)
	rule, subject := capture.result()
	return outcome{status: rec.Code, rule: rule, subject: subject, header: rec.Header(), body: rec.Body.String()}
}

// decisionCall is the call to /decisions that describes the case's request.
func decisionCall(tc testCase) *http.Request {
	u, _ := url.Parse(tc.Request.URL) // checked when read
	var body io.Reader
	if tc.Request.Body != "" {
		body = strings.NewReader(tc.Request.Body)
	}
	r := httptest.NewRequest(tc.Request.Method, "/decisions", body)
	for k, v := range tc.Request.Headers {
		r.Header.Set(k, v)
	}
	if h := r.Header.Get("Host"); h != "" {
		r.Header.Del("Host")
	}
	r.Header.Set("X-Forwarded-Method", tc.Request.Method)
	r.Header.Set("X-Forwarded-Proto", u.Scheme)
	r.Header.Set("X-Forwarded-Host", u.Host)
	r.Header.Set("X-Forwarded-Uri", u.RequestURI())
	r.Host = u.Host
	if tc.Request.RemoteAddr != "" {
		r.RemoteAddr = tc.Request.RemoteAddr
	}
	return r
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// diff lists what the outcome got wrong, one line each.
func (e caseExpect) diff(got outcome) []string {
	var out []string
	if e.Status != 0 && got.status != e.Status {
		out = append(out, fmt.Sprintf("status:  got %d, want %d", got.status, e.Status))
	}
	if e.Rule != nil && got.rule != *e.Rule {
		out = append(out, fmt.Sprintf("rule:    got %s, want %s", ruleName(got.rule), ruleName(*e.Rule)))
	}
	if e.Subject != nil && got.subject != *e.Subject {
		out = append(out, fmt.Sprintf("subject: got %q, want %q", got.subject, *e.Subject))
	}
	names := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		want := e.Headers[k]
		vals, present := got.header[http.CanonicalHeaderKey(k)]
		switch {
		case want == nil && present:
			out = append(out, fmt.Sprintf("header %s: got %q, want it absent", k, strings.Join(vals, ", ")))
		case want != nil && !present:
			out = append(out, fmt.Sprintf("header %s: absent, want %q", k, *want))
		case want != nil && strings.Join(vals, ", ") != *want:
			out = append(out, fmt.Sprintf("header %s: got %q, want %q", k, strings.Join(vals, ", "), *want))
		}
	}
	if e.BodyContains != "" && !strings.Contains(got.body, e.BodyContains) {
		out = append(out, fmt.Sprintf("body:    does not contain %q", e.BodyContains))
	}
	return out
}

func ruleName(id string) string {
	if id == "" {
		return "no rule"
	}
	return fmt.Sprintf("%q", id)
}

// fixedRules serves one rule set to the decision API.
type fixedRules struct{ set *rules.Set }

func (f fixedRules) Current() *rules.Set { return f.set }

// decisionCapture learns which rule answered (the API's Observer) and the
// subject it found (the API's decision log line). Cases run one at a time.
type decisionCapture struct {
	mu      sync.Mutex
	rule    string
	subject string
}

func (c *decisionCapture) reset() {
	c.mu.Lock()
	c.rule, c.subject = "", ""
	c.mu.Unlock()
}

func (c *decisionCapture) result() (rule, subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rule, c.subject
}

// Request implements proxy.Observer.
func (c *decisionCapture) Request(_, rule, _ string, _ int, _ time.Duration) {
	c.mu.Lock()
	c.rule = rule
	c.mu.Unlock()
}

// Levels implements logrus.Hook.
func (c *decisionCapture) Levels() []logrus.Level { return []logrus.Level{logrus.InfoLevel} }

// Fire implements logrus.Hook: it reads the subject of the decision line.
func (c *decisionCapture) Fire(e *logrus.Entry) error {
	if e.Message != "decision" {
		return nil
	}
	if s, ok := e.Data["subject"].(string); ok {
		c.mu.Lock()
		c.subject = s
		c.mu.Unlock()
	}
	return nil
}
