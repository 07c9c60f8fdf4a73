package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-proxy/portcullis/internal/fetch"
	"github.com/portcullis-proxy/portcullis/internal/registry"
	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/rules"
)

// staticRules serves one compiled rule set.
type staticRules struct{ set *rules.Set }

func (s staticRules) Current() *rules.Set { return s.set }

// globalConfigs are handler global configs as in an oathkeeper.yml.
var globalConfigs = map[string]string{
	"header": `{"headers":{"X-User":"{{ print .Subject }}"}}`,
}

// ruleSet compiles an access-rules document with every foundation handler
// enabled.
func ruleSet(t testing.TB, doc string) *rules.Set {
	t.Helper()
	cat := registry.NewCatalog()
	deps := pipeline.Deps{Context: context.Background(), HTTPClient: fetch.NewClient(fetch.ClientOptions{})}
	for _, h := range cat.Handlers() {
		_ = cat.Enable(h.Kind(), h.Name(), json.RawMessage(globalConfigs[h.Name()]), deps)
	}
	c := &rules.Compiler{Catalog: cat, Strategy: rules.Regexp, WebSocketDefaults: rules.DefaultWebSocketPolicy()}
	rs, err := rules.Parse("rules.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// seen is what the upstream echo server reports about the request it got.
type seen struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	RawPath string      `json:"raw_path"`
	Query   string      `json:"query"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
	Body    string      `json:"body"`
}

// echoUpstream is a real HTTP server on loopback that answers with what it
// received.
func echoUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		json.NewEncoder(w).Encode(seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header, string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func decodeSeen(t testing.TB, res *http.Response) seen {
	t.Helper()
	defer res.Body.Close()
	if res.Header.Get("X-Upstream") != "yes" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("response did not come from the upstream: %d %s", res.StatusCode, b)
	}
	var s seen
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeError(t testing.TB, res *http.Response) pipeline.ErrorBody {
	t.Helper()
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q, want JSON", ct)
	}
	var b pipeline.ErrorBody
	if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	if b.Error.Code != res.StatusCode {
		t.Errorf("error body code %d != status %d", b.Error.Code, res.StatusCode)
	}
	return b
}
