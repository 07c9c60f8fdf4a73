package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRequestCountsEachSeries: every request lands in the series of its
// own labels, whether its series was resolved by an earlier request or by
// concurrent first requests, and a status outside 100-599 is its own label.
func TestRequestCountsEachSeries(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				m.Request("proxy", "anon", "allowed", 200, time.Millisecond)
				m.Request("proxy", "anon", "denied", 401, time.Millisecond)
				m.Request("decisions", "anon", "allowed", 200, time.Millisecond)
			}
		})
	}
	wg.Wait()
	m.Request("proxy", "", "error", 999, time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	lines := map[string]bool{}
	for _, l := range strings.Split(string(body), "\n") {
		lines[l] = true
	}
	for _, want := range []string{
		`portcullis_requests_total{decision="allowed",frontend="proxy",rule="anon",status="200"} 80`,
		`portcullis_requests_total{decision="denied",frontend="proxy",rule="anon",status="401"} 80`,
		`portcullis_requests_total{decision="allowed",frontend="decisions",rule="anon",status="200"} 80`,
		`portcullis_requests_total{decision="error",frontend="proxy",rule="",status="999"} 1`,
		`portcullis_request_duration_seconds_count{frontend="proxy",rule="anon"} 160`,
		`portcullis_request_duration_seconds_count{frontend="decisions",rule="anon"} 80`,
		`portcullis_request_duration_seconds_count{frontend="proxy",rule=""} 1`,
	} {
		if !lines[want] {
			t.Errorf("the exposition has no line %s", want)
		}
	}
	if strings.Contains(string(body), `decision="allowed",frontend="proxy",rule="anon",status="401"`) {
		t.Error("a 401 was counted under another decision's series")
	}
}
