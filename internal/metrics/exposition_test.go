package metrics

import (
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

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
