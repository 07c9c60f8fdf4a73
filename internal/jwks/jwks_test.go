package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-proxy/portcullis/testsupport/testkeys"
)

// keyServer serves a JWKS document that the test can swap (key rotation).
type keyServer struct {
	mu    sync.Mutex
	doc   []byte
	hits  atomic.Int32
	fails atomic.Bool
	*httptest.Server
}

func newKeyServer(t *testing.T, doc []byte) *keyServer {
	ks := &keyServer{doc: doc}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		if ks.fails.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		w.Write(ks.doc)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(doc []byte) {
	ks.mu.Lock()
	ks.doc = doc
	ks.mu.Unlock()
}

func TestCandidatesRefreshOnUnknownKid(t *testing.T) {
	k1, k2 := testkeys.RSA(t, "k1"), testkeys.EC(t, "k2")
	ks := newKeyServer(t, testkeys.PublicSet(t, k1))
	now := time.Unix(1_000_000, 0)
	reg := &Registry{MinRefresh: 10 * time.Second, TTL: time.Hour}
	src := reg.Source(ks.URL)
	src.now = func() time.Time { return now }
	ctx := context.Background()

	keys, err := Candidates(ctx, []*Source{src}, "k1", jose.RS256)
	if err != nil || len(keys) != 1 {
		t.Fatalf("Candidates(k1) = %d keys, %v", len(keys), err)
	}
	// An RS256 kid does not fit ES256.
	if keys, _ := Candidates(ctx, []*Source{src}, "k1", jose.ES256); len(keys) != 0 {
		t.Errorf("an RSA key must not be a candidate for ES256")
	}

	ks.set(testkeys.PublicSet(t, k1, k2))
	hits := ks.hits.Load()
	// Within the minimum refresh interval an unknown kid does not fetch.
	if keys, _ := Candidates(ctx, []*Source{src}, "k2", jose.ES256); len(keys) != 0 {
		t.Errorf("k2 found before a refresh was allowed")
	}
	if ks.hits.Load() != hits {
		t.Errorf("an unknown kid fetched again within the minimum refresh interval")
	}
	now = now.Add(11 * time.Second)
	keys, err = Candidates(ctx, []*Source{src}, "k2", jose.ES256)
	if err != nil || len(keys) != 1 || keys[0].KeyID != "k2" {
		t.Fatalf("after rotation Candidates(k2) = %v, %v", keys, err)
	}

	// The key server fails: the last good set keeps serving.
	ks.fails.Store(true)
	now = now.Add(2 * time.Hour)
	if keys, err := Candidates(ctx, []*Source{src}, "k1", jose.RS256); err != nil || len(keys) != 1 {
		t.Errorf("with the key server down the last good set must serve: %v, %v", keys, err)
	}
}

func TestNoKeysFailsClosed(t *testing.T) {
	ks := newKeyServer(t, nil)
	ks.fails.Store(true)
	reg := &Registry{}
	_, err := Candidates(context.Background(), []*Source{reg.Source(ks.URL)}, "x", jose.RS256)
	if !errors.Is(err, ErrNoKeys) {
		t.Errorf("error = %v, want ErrNoKeys", err)
	}
	if reg.Source(ks.URL) != reg.Sources()[0] {
		t.Error("the registry must share one source per URL")
	}
}

func TestPublicNeverPublishesPrivateParts(t *testing.T) {
	set, err := Parse(testkeys.Set(t, testkeys.RSA(t, "r"), testkeys.EC(t, "e"), jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac", Algorithm: "HS256"}))
	if err != nil {
		t.Fatal(err)
	}
	pub := Public(set)
	b, _ := json.Marshal(pub)
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("published %d keys, want 2 (the symmetric key must be left out)", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("published key %v carries private member %q", k["kid"], private)
			}
		}
	}
	if strings.Contains(string(b), "hmac") {
		t.Error("the symmetric key's id was published")
	}
}

func TestAlgorithmFor(t *testing.T) {
	r, e := testkeys.RSA(t, "r"), testkeys.EC(t, "e")
	r.Algorithm, e.Algorithm = "", ""
	if AlgorithmFor(r) != jose.RS256 || AlgorithmFor(e) != jose.ES256 {
		t.Errorf("AlgorithmFor = %s, %s; want RS256, ES256", AlgorithmFor(r), AlgorithmFor(e))
	}
	if _, err := Parse([]byte(`{"keys":[]}`)); err == nil {
		t.Error("an empty key set must not parse")
	}
}
