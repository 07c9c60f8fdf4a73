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
		var url string
		methods := []string{"GET"}
		if strategy == rules.Glob {
			switch k % 6 {
			case 0:
				url, methods = fmt.Sprintf("https://%s/api/v%d/items", host, k), []string{"GET", "POST"}
			case 1:
				url, methods = fmt.Sprintf("https://%s/api/v%d/items/<[0-9]*>", host, k), []string{"GET", "PUT", "DELETE"}
			case 2:
				url = fmt.Sprintf("https://%s/api/v%d/items/<[0-9]*>/comments/<*>", host, k)
			case 3:
				url = fmt.Sprintf("https://%s/api/v%d/search/<**>", host, k)
			case 4:
				url = fmt.Sprintf("https://%s/ws/v%d/<{chat,feed,presence}>", host, k)
			case 5:
				url = fmt.Sprintf("https://%s/static/v%d/<**>.<{js,css,png}>", host, k)
			}
		} else {
			switch k % 6 {
			case 0:
				url, methods = fmt.Sprintf("https://%s/api/v%d/items", host, k), []string{"GET", "POST"}
			case 1:
				url, methods = fmt.Sprintf("https://%s/api/v%d/items/<[0-9]+>", host, k), []string{"GET", "PUT", "DELETE"}
			case 2:
				url = fmt.Sprintf("https://%s/api/v%d/items/<[0-9]+>/comments/<[a-z0-9-]+>", host, k)
			case 3:
				url = fmt.Sprintf("https://%s/api/v%d/search/<.*>", host, k)
			case 4:
				url = fmt.Sprintf("https://%s/ws/v%d/<(chat|feed|presence)>", host, k)
			case 5:
				url = fmt.Sprintf("https://%s/static/v%d/<.+\\.(js|css|png)>", host, k)
			}
		}
		b.WriteString(ruleDoc(fmt.Sprintf("r%d", i), url, methods...))
	}
	return b.String()
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
