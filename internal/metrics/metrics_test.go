package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Every portcullis family is exported at zero from start-up, before any
// request, tunnel or reload, with every known reason and result.
func TestEveryFamilyExportedAtZeroFromStartUp(t *testing.T) {
	m := New()
	var want []string
	for _, c := range []prometheus.Collector{m.requests, m.requestDuration, m.tunnelsActive, m.tunnelsClosed, m.tunnelLifetime,
		m.handshakes, m.handshakeTime, m.bytesRelayed, m.closeLateness, m.reloads, m.rulesLoaded,
		m.revocations, m.revokedClosed, m.channelUp, m.channelLag, m.published} {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		d := (<-ch).String()
		name := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d)[1]
		want = append(want, name)
	}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		got[f.GetName()] = true
		if !strings.HasPrefix(f.GetName(), "portcullis_") {
			continue // the runtime's and the process's own
		}
		for _, mt := range f.GetMetric() {
			if c := mt.GetCounter(); c != nil && c.GetValue() != 0 {
				t.Errorf("%s starts at %v", f.GetName(), c.GetValue())
			}
			if h := mt.GetHistogram(); h != nil && h.GetSampleCount() != 0 {
				t.Errorf("%s starts with %d samples", f.GetName(), h.GetSampleCount())
			}
		}
	}
	for _, n := range want {
		if !got[n] {
			t.Errorf("family %s is not exported at start-up", n)
		}
	}

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	text := scrape(t, srv.URL)
	for _, line := range []string{
		`portcullis_rules_reloads_total{result="failed"} 0`,
		`portcullis_rules_reloads_total{result="ok"} 0`,
		`portcullis_websocket_tunnels_active{rule=""} 0`,
		`portcullis_websocket_tunnels_closed_total{reason="max_lifetime",rule=""} 0`,
		`portcullis_websocket_handshakes_total{result="origin_refused",rule=""} 0`,
		`portcullis_websocket_bytes_relayed_total{direction="to_client",rule=""} 0`,
		`portcullis_websocket_deadline_close_lateness_seconds_count{reason="idle_timeout",rule=""} 0`,
		`portcullis_requests_total{decision="denied",frontend="decisions",rule="",status="404"} 0`,
		`portcullis_revocations_total{source="backchannel_logout"} 0`,
		`portcullis_revocation_publish_total{result="dropped"} 0`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
	// Events still count on top.
	m.Reload(errors.New("bad"), 0)
	m.Closed("chat", "max_lifetime", time.Second)
	text = scrape(t, srv.URL)
	for _, line := range []string{`portcullis_rules_reloads_total{result="failed"} 1`, `portcullis_websocket_tunnels_closed_total{reason="max_lifetime",rule="chat"} 1`} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := srvGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func srvGet(url string) (string, error) {
	res, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
