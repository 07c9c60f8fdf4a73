package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/portcullis-proxy/portcullis/proxy"
)

// The request line is written at info level, by the proxy and by the
// decision API alike, whether the handler was given a Logger or an Entry;
// above info nothing is written.
func TestRequestLogFollowsLevel(t *testing.T) {
	up := echoUpstream(t)
	set := ruleSet(t, withUpstream(benchRule, up.URL))
	for _, tc := range []struct {
		name  string
		level logrus.Level
		entry bool
		want  bool
	}{
		{"logger at info", logrus.InfoLevel, false, true},
		{"entry at debug", logrus.DebugLevel, true, true},
		{"logger at warn", logrus.WarnLevel, false, false},
		{"entry at error", logrus.ErrorLevel, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out lockedBuffer
			l := logTo(&out)
			l.SetLevel(tc.level)
			var fl logrus.FieldLogger = l
			if tc.entry {
				fl = l.WithField("component", "test")
			}
			front := serve(t, proxy.NewHandler(proxy.HandlerOptions{DecisionOptions: logged(set, fl)}))
			api := serve(t, proxy.NewAPI(proxy.APIOptions{DecisionOptions: logged(set, fl)}))
			for _, u := range []string{front.URL + "/anon/items/1", api.URL + "/decisions/anon/items/1"} {
				res, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d", u, res.StatusCode)
				}
			}
			got := out.String()
			for _, msg := range []string{"msg=request", "msg=decision"} {
				if has := strings.Contains(got, msg) && strings.Contains(got, "rule=anon"); has != tc.want {
					t.Errorf("%s logged = %v, want %v; log:\n%s", msg, has, tc.want, got)
				}
			}
		})
	}
}
