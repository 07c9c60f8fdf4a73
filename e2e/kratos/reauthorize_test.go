package kratos

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
	"github.com/portcullis-proxy/portcullis/testsupport/servertest"
)

// Continuous authorization through the whole server: a real Kratos behind
// cookie_session, a real WebSocket and event-stream upstream, and the rule's
// authorizer asked again at every re-check — a real HTTP decision API
// (remote_json) or ladon policies read from a file.

// decisionAPI is a real policy decision point on loopback for remote_json:
// it reads the payload the proxy rendered ({"subject", "room", "role"}) and
// allows unless the room is closed or the role is banned. It records every
// payload it decided.
type decisionAPI struct {
	*httptest.Server
	mu     sync.Mutex
	closed map[string]bool // rooms no one may be in
	asked  []decisionPayload
}

type decisionPayload struct {
	Subject string `json:"subject"`
	Room    string `json:"room"`
	Role    string `json:"role"`
}

func newDecisionAPI(t *testing.T) *decisionAPI {
	d := &decisionAPI{closed: map[string]bool{}}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p decisionPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.asked = append(d.asked, p)
		deny := d.closed[p.Room] || p.Role == "banned"
		d.mu.Unlock()
		if deny {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(d.Close)
	return d
}

// closeRoom makes every later decision about room a deny.
func (d *decisionAPI) closeRoom(room string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed[room] = true
}

// decisions returns how many decisions were made about each room, and the
// payloads.
func (d *decisionAPI) decisions() (map[string]int, []decisionPayload) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := map[string]int{}
	for _, p := range d.asked {
		n[p.Room]++
	}
	return n, append([]decisionPayload(nil), d.asked...)
}

// reauthRules are the rules of the continuous-authorization tests: each
// room is a WebSocket (/<prefix>/ws/<room>) and an event stream
// (/<prefix>/sse/<room>) behind cookie_session, re-checked every 200ms; pdp
// rules ask the decision API pdp, down and tolerant ones flaky, ladon ones
// the policy file.
func reauthRules(pdp, flaky, wsUpstream, sseUpstream string) string {
	var b strings.Builder
	for _, r := range []struct{ id, prefix, kind, authorizer, websocket string }{
		{"pdp-ws", "pdp", "ws", remoteJSON(pdp), ""},
		{"pdp-sse", "pdp", "sse", remoteJSON(pdp), ""},
		{"down-ws", "down", "ws", remoteJSON(flaky), ""},
		{"tolerant-ws", "tolerant", "ws", remoteJSON(flaky), ", tolerate_unavailable: true, unavailable_grace: 2s"},
		{"ladon-ws", "ladon", "ws", "{handler: ladon}", ""},
		{"ladon-sse", "ladon", "sse", "{handler: ladon}", ""},
	} {
		up := wsUpstream
		if r.kind == "sse" {
			up = sseUpstream
		}
		fmt.Fprintf(&b, "- id: %s\n  match: {url: \"http://<[^/]+>/%s/%s/<[a-z0-9]+>\", methods: [GET]}\n", r.id, r.prefix, r.kind)
		fmt.Fprintf(&b, "  authenticators: [{handler: cookie_session}]\n  authorizer: %s\n  mutators: [{handler: noop}]\n", r.authorizer)
		fmt.Fprintf(&b, "  upstream: {url: %q}\n  websocket: {revalidate_every: 200ms, close_grace: 200ms%s}\n", up, r.websocket)
	}
	return b.String()
}

// remoteJSON is the remote_json authorizer asking the decision API at url
// (the payload is the handler's global config).
func remoteJSON(url string) string {
	return fmt.Sprintf("{handler: remote_json, config: {remote: %q}}", url)
}

// reauthConfig is laid over Kratos's cookie_session
// ([servertest.KratosSessions]); %[1]s is the ladon policy file.
const reauthConfig = `
authenticators:
  cookie_session: {config: {extra_from: "@this"}}
authorizers:
  remote_json:
    enabled: true
    config:
      payload: '{"subject": "{{ print .Subject }}", "room": "{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}", "role": "{{ if .Extra.identity.metadata_public }}{{ print .Extra.identity.metadata_public.role }}{{ end }}"}'
  ladon:
    enabled: true
    config:
      repositories: ["file://%[1]s"]
      refresh_interval: 50ms
      required_action: connect
      required_resource: "rn:chat:{{ printIndex .MatchContext.RegexpCaptureGroups 1 }}"
mutators:
  noop: {enabled: true}
`

// roomPolicy is a ladon policy letting subject into the listed rooms.
func roomPolicy(subject string, rooms ...string) string {
	var b strings.Builder
	for _, r := range rooms {
		fmt.Fprintf(&b, "- id: %s-%s\n  subjects: [%q]\n  actions: [connect]\n  resources: [\"rn:chat:%s\"]\n  effect: allow\n", subject, r, subject, r)
	}
	if b.Len() == 0 {
		return "[]\n"
	}
	return b.String()
}

// reauthGateway is portcullis with the rules above.
type reauthGateway struct {
	proxy    string // host:port
	policies string // the ladon policy file
	// pdp decides the pdp rules; flaky the down and tolerant rules (a test
	// closes it to make it unreachable).
	pdp, flaky *decisionAPI
}

// startReauthGateway starts portcullis checking sessions at whoami (a
// Kratos's, or a counter in front of it), the ladon policies letting
// ladonSubject into room1 and room2.
func startReauthGateway(t *testing.T, whoami, ladonSubject string) reauthGateway {
	t.Helper()
	g := reauthGateway{policies: filepath.Join(t.TempDir(), "policies.yml"), pdp: newDecisionAPI(t), flaky: newDecisionAPI(t)}
	servertest.ReplaceFile(t, g.policies, roomPolicy(ladonSubject, "room1", "room2"))
	srv := servertest.Start(t, servertest.Config{
		YAML:  servertest.Merge(t, servertest.KratosSessions(whoami, "cookie_session"), fmt.Sprintf(reauthConfig, g.policies)),
		Rules: reauthRules(g.pdp.URL, g.flaky.URL, newUpstream(t).URL, servertest.EventStream(t).URL),
	})
	g.proxy = srv.Addr("proxy")
	return g
}

// channel is an open tunnel or event stream of the tests: it can check
// that it still relays and wait for the proxy's end of it.
type channel interface {
	// relays reports an error when the channel does not carry traffic.
	relays() error
	// ended waits (up to d) for the proxy to end the channel and returns
	// the Close reason (WebSocket, with code 1008) or the final event's
	// reason (event stream).
	ended(t *testing.T, d time.Duration) string
}

type wsChannel struct{ conn net.Conn }

func openWS(t *testing.T, g reauthGateway, id kratostest.Identity, path string) channel {
	t.Helper()
	conn, _, err := wsDial(t, "ws://"+g.proxy+path, http.Header{"Cookie": {id.CookieHeader()}})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c := wsChannel{conn}
	if err := c.relays(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func (c wsChannel) relays() error { return echoes(c.conn, "ping") }

func (c wsChannel) ended(t *testing.T, d time.Duration) string {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		_, err := wsutil.ReadServerText(c.conn)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			if closed.Code != ws.StatusPolicyViolation {
				t.Errorf("Close %d %q, want 1008", closed.Code, closed.Reason)
			}
			return closed.Reason
		}
		if err != nil {
			t.Fatalf("tunnel ended without a Close frame within %v: %v", d, err)
		}
	}
}

// sseChannel reads its event stream on a goroutine of its own.
type sseChannel struct {
	events chan string // data lines; closed at the end of the response
	final  chan string // the final event's reason, if one came
}

func openSSE(t *testing.T, g reauthGateway, id kratostest.Identity, path string) channel {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+g.proxy+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", id.CookieHeader())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		t.Fatalf("%s: %s", path, res.Status)
	}
	t.Cleanup(func() { res.Body.Close() })
	c := sseChannel{events: make(chan string, 1024), final: make(chan string, 1)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(res.Body)
		closing := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "event: portcullis-close":
				closing = true
			case strings.HasPrefix(line, "data: ") && closing:
				var d struct{ Reason string }
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d)
				c.final <- d.Reason
			case strings.HasPrefix(line, "data: "):
				c.events <- line
			}
		}
	}()
	if err := c.relays(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func (c sseChannel) relays() error {
	// Events queued earlier do not count: the next one must arrive.
	for drained := false; !drained; {
		select {
		case _, ok := <-c.events:
			if !ok {
				return errors.New("the event stream ended")
			}
		default:
			drained = true
		}
	}
	select {
	case _, ok := <-c.events:
		if !ok {
			return errors.New("the event stream ended")
		}
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("no event for 5s")
	}
}

func (c sseChannel) ended(t *testing.T, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case reason := <-c.final:
			return reason
		case _, ok := <-c.events:
			if !ok {
				select {
				case reason := <-c.final:
					return reason
				default:
					t.Fatal("the event stream ended without a final event")
				}
			}
		case <-deadline:
			t.Fatalf("the event stream did not end within %v", d)
		}
	}
}

// open opens a WebSocket or an event stream at /<prefix>/<kind>/<room>.
func open(t *testing.T, g reauthGateway, id kratostest.Identity, kind, prefix, room string) channel {
	path := "/" + prefix + "/" + kind + "/" + room
	if kind == "ws" {
		return openWS(t, g, id, path)
	}
	return openSSE(t, g, id, path)
}

// wantReason checks the reason a channel ended with: the Close reason
// text of a tunnel, the final event's reason label of a stream.
func wantReason(t *testing.T, kind, got, wsText, label string) {
	t.Helper()
	want := map[string]string{"ws": wsText, "sse": label}[kind]
	if got != want {
		t.Errorf("%s ended with %q, want %q", kind, got, want)
	}
}

// TestReauthorizeRemoteJSON: a tunnel and an event stream are re-authorized
// at every re-check by a real decision API with the session Kratos reports
// now. When the API's answer for the room turns to deny, the room's channel
// closes with "access revoked" while the same session's channel in another
// room stays; when an operator bans the identity in Kratos (public
// metadata), the refreshed session carries it to the API and the other
// room closes too.
func TestReauthorizeRemoteJSON(t *testing.T) {
	k := kratosShared.Get(t)
	for _, kind := range []string{"ws", "sse"} {
		t.Run(kind, func(t *testing.T) {
			g := startReauthGateway(t, k.WhoamiURL(), "nobody")
			id := k.RegisterBrowser(t)
			room1, room2 := open(t, g, id, kind, "pdp", "room1"), open(t, g, id, kind, "pdp", "room2")
			handlertest.WaitFor(t, "two re-authorizations per room", 15*time.Second, func() bool {
				n, _ := g.pdp.decisions()
				return n["room1"] >= 3 && n["room2"] >= 3
			})
			_, asked := g.pdp.decisions()
			if p := asked[len(asked)-1]; p.Subject != id.IdentityID || p.Role != "" {
				t.Errorf("re-authorization payload %+v, want subject %q and no role", p, id.IdentityID)
			}

			g.pdp.closeRoom("room1")
			wantReason(t, kind, room1.ended(t, 10*time.Second), "access revoked", "access_revoked")
			if err := room2.relays(); err != nil {
				t.Fatalf("the session's channel in another room: %v", err)
			}

			k.SetMetadataPublic(t, id.IdentityID, map[string]any{"role": "banned"})
			wantReason(t, kind, room2.ended(t, 10*time.Second), "access revoked", "access_revoked")
			_, asked = g.pdp.decisions()
			if p := asked[len(asked)-1]; p.Role != "banned" || p.Room != "room2" {
				t.Errorf("last payload %+v, want room2 with the role Kratos reports now", p)
			}
		})
	}
}

// TestReauthorizeCoalesced: three tunnels of one session in one room and
// one in another make one Kratos call and one decision per room per
// re-check, not one of each per tunnel.
func TestReauthorizeCoalesced(t *testing.T) {
	k := kratosShared.Get(t)
	whoami := k.CountWhoami(t)
	g := startReauthGateway(t, whoami.WhoamiURL(), "nobody")
	id := k.RegisterBrowser(t)
	for i := 0; i < 3; i++ {
		open(t, g, id, "ws", "pdp", "room1")
	}
	open(t, g, id, "ws", "pdp", "room2")
	n0, _ := g.pdp.decisions() // the upgrades: 3 and 1
	w0 := whoami.Calls()
	handlertest.WaitFor(t, "five re-checks", 15*time.Second, func() bool { n, _ := g.pdp.decisions(); return n["room2"]-n0["room2"] >= 5 })
	n, _ := g.pdp.decisions()
	room1, room2, calls := n["room1"]-n0["room1"], n["room2"]-n0["room2"], int(whoami.Calls()-w0)
	if room1 > room2+1 || room1 < room2-1 {
		t.Errorf("re-authorizations: room1 (three tunnels) %d, room2 (one tunnel) %d; want one per room per re-check", room1, room2)
	}
	if calls > room2+1 || calls < room2-1 {
		t.Errorf("%d Kratos calls for %d re-checks of the session's four tunnels; want one per re-check", calls, room2)
	}
}

// TestReauthorizeLadon: a tunnel and an event stream under a ladon rule
// are closed with "access revoked" at the first re-check after the policy
// file stops allowing the subject into the room; the session's channel in
// a room still allowed stays.
func TestReauthorizeLadon(t *testing.T) {
	k := kratosShared.Get(t)
	for _, kind := range []string{"ws", "sse"} {
		t.Run(kind, func(t *testing.T) {
			id := k.RegisterBrowser(t)
			g := startReauthGateway(t, k.WhoamiURL(), id.IdentityID)
			room1, room2 := open(t, g, id, kind, "ladon", "room1"), open(t, g, id, kind, "ladon", "room2")
			time.Sleep(500 * time.Millisecond) // a few re-checks, all allowed
			if err := room1.relays(); err != nil {
				t.Fatalf("before the policy change: %v", err)
			}
			servertest.ReplaceFile(t, g.policies, roomPolicy(id.IdentityID, "room2"))
			wantReason(t, kind, room1.ended(t, 10*time.Second), "access revoked", "access_revoked")
			if err := room2.relays(); err != nil {
				t.Errorf("the room the policy still allows: %v", err)
			}
		})
	}
}

// TestReauthorizeUnreachable: an authorizer that cannot be reached at a
// re-check closes the tunnel with "access could not be reauthorized",
// unless the rule tolerates unavailability: then the tunnel lives on
// through failed re-checks until unavailable_grace (2s) has passed since
// the first of them.
func TestReauthorizeUnreachable(t *testing.T) {
	k := kratosShared.Get(t)
	g := startReauthGateway(t, k.WhoamiURL(), "nobody")
	id := k.RegisterBrowser(t)
	strict, tolerant := open(t, g, id, "ws", "down", "room1"), open(t, g, id, "ws", "tolerant", "room1")

	g.flaky.Close() // from now on, connections to it are refused
	down := time.Now()
	if got := strict.ended(t, 5*time.Second); got != "access could not be reauthorized" {
		t.Errorf("strict rule: Close reason %q, want \"access could not be reauthorized\"", got)
	}
	time.Sleep(time.Until(down.Add(time.Second)))
	if err := tolerant.relays(); err != nil {
		t.Fatalf("tolerant rule, 1s into the outage: %v", err)
	}
	got := tolerant.ended(t, 10*time.Second)
	if lasted := time.Since(down); got != "access could not be reauthorized" || lasted < 1800*time.Millisecond || lasted > 5*time.Second {
		t.Errorf("tolerant rule: Close reason %q after %v of outage, want \"access could not be reauthorized\" at about the 2s grace", got, lasted)
	}
}
