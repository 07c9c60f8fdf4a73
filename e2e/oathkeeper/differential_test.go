package oathkeeper

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var timeNow = time.Now

// scenario is one configuration and rule set with the cases sent to it.
type scenario struct {
	name     string
	strategy string
	rules    string
	cases    []testCase
}

var scenarios = []scenario{
	{name: "regexp", strategy: "regexp", rules: regexpRules, cases: regexpCases},
	{name: "glob", strategy: "glob", rules: globRules, cases: globCases},
}

// TestDifferential sends every case to Oathkeeper and to portcullis, both
// started from the same configuration file and rules, and compares the
// answers.
func TestDifferential(t *testing.T) {
	bin := oathkeeperBinary(t)
	env := newEnvironment(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			rulesPath := filepath.Join(dir, "access-rules.json")
			if err := os.WriteFile(rulesPath, []byte(env.expand(sc.rules)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := strings.NewReplacer("{{STRATEGY}}", sc.strategy, "{{RULES}}", rulesPath).Replace(env.expand(configTemplate))
			ok := startOathkeeper(t, bin, dir, cfg)
			pc := startPortcullis(t, cfg)
			waitRulesLoaded(t, ok, pc)
			for _, c := range sc.cases {
				t.Run(c.name, func(t *testing.T) {
					want := do(t, ok, c, env)
					got := do(t, pc, c, env)
					if c.deliberate != "" {
						if c.want == nil {
							t.Fatalf("case %q differs deliberately but states no answer", c.name)
						}
						if !reflect.DeepEqual(normalize(got), normalize(*c.want)) {
							t.Errorf("portcullis answered %v, want (deliberately, %s) %v; Oathkeeper answered %v",
								got, c.deliberate, *c.want, want)
						}
						return
					}
					if !reflect.DeepEqual(normalize(got), normalize(want)) {
						t.Errorf("answers differ\n oathkeeper: %v\n portcullis: %v", want, got)
					}
				})
			}
		})
	}
}

// normalize round-trips an outcome through JSON so that numbers and maps
// compare by value.
func normalize(o outcome) any {
	b, _ := json.Marshal(o)
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}

// waitRulesLoaded waits until both products list the same number of rules
// on GET /rules (Oathkeeper loads its file asynchronously).
func waitRulesLoaded(t *testing.T, insts ...*instance) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, inst := range insts {
		for {
			res, err := client.Get(inst.api + "/rules")
			if err == nil {
				var list []any
				_ = json.NewDecoder(res.Body).Decode(&list)
				res.Body.Close()
				if len(list) > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: rules not loaded within 30s", inst.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
