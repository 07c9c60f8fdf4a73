package authorizers

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// TestLadonWithKratosIdentity decides on traits of real Kratos identities:
// the session document comes from Kratos's whoami endpoint, as the session
// authenticators put it in Extra.
func TestLadonWithKratosIdentity(t *testing.T) {
	k := kratostest.Start(t, kratostest.Options{})
	alice, bob := k.RegisterAPI(t), k.RegisterAPI(t)

	whoami := func(id kratostest.Identity) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, k.WhoamiURL(), nil)
		req.Header.Set("X-Session-Token", id.SessionToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("whoami: %d", res.StatusCode)
		}
		var doc map[string]any
		if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}

	// Only alice's address may connect to the echo service, and only from
	// loopback.
	policies := fmt.Sprintf(`[{"id":"echo-for-alice","subjects":["<.*>"],"actions":["connect"],"resources":["rn:echo:<.*>"],"effect":"allow",
		"conditions":{"traits.email":{"type":"StringEqualCondition","options":{"equals":%q}},
		              "remote_ip":{"type":"CIDRCondition","options":{"cidr":"127.0.0.0/8"}}}}]`, alice.Email)
	deps, _ := handlertest.DepsWithLog(t)
	b := handlertest.Enable(t, pipeline.SharedFactory(NewLadon), handlertest.JSON(t, map[string]any{"repositories": []string{"inline://" + base64.StdEncoding.EncodeToString([]byte(policies))}}), deps)
	az := handlertest.Build(t, b, handlertest.JSON(t, map[string]any{"required_action": "connect", "required_resource": "rn:echo:{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"}))
	for _, tt := range []struct {
		name   string
		id     kratostest.Identity
		remote string
		want   int
	}{
		{"alice from loopback", alice, "127.0.0.1:5000", 0},
		{"alice from elsewhere", alice, "198.51.100.7:5000", 403},
		{"bob", bob, "127.0.0.1:5000", 403},
	} {
		doc := whoami(tt.id)
		r, s := kratosSession(t, "", nil, "http://gw.test/echo/main", tt.remote, "main")
		s.Subject = doc["identity"].(map[string]any)["id"].(string)
		s.Extra = doc
		if got := statusOrZero(az.Authorize(r, s)); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
}
