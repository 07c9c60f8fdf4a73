package authorizers

import (
	"path/filepath"
	"testing"

	"github.com/portcullis-proxy/portcullis/pipeline"
	"github.com/portcullis-proxy/portcullis/testsupport/handlertest"
)

// BenchmarkLadon compares a ladon decision over the example policy set
// (three policies, patterns and conditions) with the allow authorizer,
// measured in the same run.
func BenchmarkLadon(b *testing.B) {
	deps, _ := handlertest.DepsWithLog(b)
	bl := handlertest.Enable(b, pipeline.SharedFactory(NewLadon), handlertest.JSON(b, map[string]any{"repositories": []string{"file://" + filepath.Join("testdata", "ladon", "require-role.yaml")}}), deps)
	ladonAz := handlertest.Build(b, bl, handlertest.JSON(b, map[string]any{"required_action": "connect", "required_resource": "rn:chat:{{ printIndex .MatchContext.RegexpCaptureGroups 0 }}"}))
	ba, _ := pipeline.TypedFactory(NewAllow)(nil, deps)
	allowAz, _ := ba.Build(nil)
	r, s := kratosSession(b, "erin", map[string]any{"team": "blue"}, "http://gw.test/ws/blue-lobby", "127.0.0.1:6000", "blue-lobby")
	b.Run("reference-allow", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := allowAz.Authorize(r, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ladon", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := ladonAz.Authorize(r, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
