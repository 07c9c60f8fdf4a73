package rules

import (
	"errors"
	"strings"
	"testing"
)

// gobwas/glob panics matching some inputs (here its Row matcher, on the
// pattern "0{" and a one-byte URL): the prover reports the pair as
// undecided instead of taking the rules load down with it.
func TestOverlapsSurviveAMatcherPanic(t *testing.T) {
	set, err := pairSet(Glob, "<0{>", "0")
	if err != nil {
		t.Fatal(err)
	}
	rep := set.Overlaps()
	if len(rep.Overlaps) != 0 || len(rep.Unproven) != 1 || !errors.Is(rep.Unproven[0], ErrUndecidable) ||
		!strings.Contains(rep.Unproven[0].Error(), "a matcher panicked") {
		t.Fatalf("Overlaps() = %v, want the pair undecided", rep.Errors())
	}
	t.Log(rep.Unproven[0])
}
