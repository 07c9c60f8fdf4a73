package metrics

import (
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

var update = flag.Bool("update", false, "rewrite testdata/exposition.txt from the registry")

// The portcullis families a fresh registry exports — names, help texts,
// types, label names, buckets and the start-up series — are the ones in
// testdata/exposition.txt, line for line. Dashboards and alerts read these
// names and buckets: a change to them is a change of the exposition, made
// on purpose and with -update.
func TestExpositionAtStartUpIsTheRecordedOne(t *testing.T) {
	srv := httptest.NewServer(New().Handler())
	defer srv.Close()
	var got strings.Builder
	for _, line := range strings.SplitAfter(scrape(t, srv.URL), "\n") {
		if strings.HasPrefix(line, "portcullis_") || strings.HasPrefix(line, "# HELP portcullis_") || strings.HasPrefix(line, "# TYPE portcullis_") {
			got.WriteString(line)
		}
	}
	golden := filepath.Join("testdata", "exposition.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("exposition differs from %s at line %d:\n got  %q\n want %q", golden, i+1, g, w)
			}
		}
	}
}

// A family that does not fit its kind panics when New builds it, so that a
// histogram never silently takes the default buckets and no counter
// silently drops the buckets it was given.
func TestFamilyThatDoesNotFitItsKindPanics(t *testing.T) {
	var (
		c  *prometheus.CounterVec
		hv *prometheus.HistogramVec
		g  prometheus.Gauge
	)
	for _, f := range []family{
		{into: &c, name: "counter_with_buckets", labels: []string{"a"}, buckets: []float64{1}},
		{into: &hv, name: "histogram_without_buckets", labels: []string{"a"}},
		{into: &g, name: "gauge_with_labels", labels: []string{"a"}},
		{into: new(int), name: "not_a_collector"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("family %s built without a panic", f.name)
				}
			}()
			f.build()
		}()
	}
}
