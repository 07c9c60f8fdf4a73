package rules_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-proxy/portcullis/rules"
)

// realisticRules writes n rules in the shape of a real deployment: 20
// hosts, each with versioned REST resources (collections, items by id,
// nested items, search), a WebSocket endpoint and static files, using both
// literal URLs and patterns, and no two rules matching one request.
func realisticRules(n int, strategy rules.Strategy) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("svc%d.example.com", i%20)
		k := i / 20
		shape := realisticShapes[k%len(realisticShapes)]
		url := shape.regexp
		if strategy == rules.Glob {
			url = shape.glob
		}
		methods := shape.methods
		if methods == nil {
			methods = []string{"GET"}
		}
		b.WriteString(ruleDoc(fmt.Sprintf("r%d", i), fmt.Sprintf(url, host, k), methods...))
	}
	return b.String()
}

// realisticShapes are the URLs of realisticRules, as a format of the host
// and the version, written in each strategy's syntax; methods nil: GET.
var realisticShapes = []struct {
	glob, regexp string
	methods      []string
}{
	{"https://%s/api/v%d/items", "https://%s/api/v%d/items", []string{"GET", "POST"}},
	{"https://%s/api/v%d/items/<[0-9]*>", "https://%s/api/v%d/items/<[0-9]+>", []string{"GET", "PUT", "DELETE"}},
	{"https://%s/api/v%d/items/<[0-9]*>/comments/<*>", "https://%s/api/v%d/items/<[0-9]+>/comments/<[a-z0-9-]+>", nil},
	{"https://%s/api/v%d/search/<**>", "https://%s/api/v%d/search/<.*>", nil},
	{"https://%s/ws/v%d/<{chat,feed,presence}>", "https://%s/ws/v%d/<(chat|feed|presence)>", nil},
	{"https://%s/static/v%d/<**>.<{js,css,png}>", "https://%s/static/v%d/<.+\\.(js|css|png)>", nil},
}

func TestOverlapsRealisticSetIsDisjoint(t *testing.T) {
	for _, s := range []rules.Strategy{rules.Regexp, rules.Glob} {
		set, err := compile(t, compiler(t, s), "rules.yml", realisticRules(1000, s))
		if err != nil {
			t.Fatal(err)
		}
		if rep := set.Overlaps(); len(rep.Overlaps)+len(rep.Unproven) != 0 {
			t.Errorf("%s: %d findings, first %v", s, len(rep.Errors()), rep.Errors()[0])
		}
		// One rule more that shadows a whole version is found.
		extra := ruleDoc("shadow", "https://svc3.example.com/api/v7/<.*>", "GET")
		if s == rules.Glob {
			extra = ruleDoc("shadow", "https://svc3.example.com/api/v7/<**>", "GET")
		}
		set, err = compile(t, compiler(t, s), "rules.yml", realisticRules(1000, s)+extra)
		if err != nil {
			t.Fatal(err)
		}
		if rep := set.Overlaps(); len(rep.Overlaps) == 0 || len(rep.Unproven) != 0 {
			t.Errorf("%s with a shadowing rule: %v", s, rep.Errors())
		}
	}
}

// BenchmarkOverlaps1000 proves 1,000 realistic rules disjoint. Its
// reference, measured in the same run, is compiling the same rules (parse
// excluded): x-compile is how many compilations one proof costs.
func BenchmarkOverlaps1000(b *testing.B) {
	for _, s := range []rules.Strategy{rules.Regexp, rules.Glob} {
		b.Run(string(s), func(b *testing.B) {
			c := compiler(b, s)
			rs, err := rules.Parse("rules.yml", []byte(realisticRules(1000, s)))
			if err != nil {
				b.Fatal(err)
			}
			var compileTime, proveTime time.Duration
			for b.Loop() {
				t0 := time.Now()
				set, err := c.Compile(rs)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if rep := set.Overlaps(); len(rep.Overlaps)+len(rep.Unproven) != 0 {
					b.Fatal(rep.Errors()[0])
				}
				compileTime += t1.Sub(t0)
				proveTime += time.Since(t1)
			}
			b.ReportMetric(float64(proveTime)/float64(compileTime), "x-compile")
			b.ReportMetric(float64(proveTime.Milliseconds())/float64(b.N), "ms-prove/op")
		})
	}
}
