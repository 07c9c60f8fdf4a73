package pipeline

import (
	"slices"
	"testing"
)

// TestScrubMerge: the union keeps order and drops duplicates, prefixes
// match subprotocol entries, and appending to a merged Scrub (as an
// authenticator does for its request) never changes the rule's carriers,
// which every request of the rule shares.
func TestScrubMerge(t *testing.T) {
	rule := Scrub{QueryParams: make([]string, 1, 8), SubprotocolPrefixes: []string{"token."}}
	rule.QueryParams[0] = "token"
	s := rule.Merge(Scrub{QueryParams: []string{"token", "access_token"}, Subprotocols: []string{"x.1"}})
	if !slices.Equal(s.QueryParams, []string{"token", "access_token"}) || !slices.Equal(s.Subprotocols, []string{"x.1"}) {
		t.Errorf("merged %+v", s)
	}
	per := rule.Merge(Scrub{})
	per.QueryParams = append(per.QueryParams, "mine")
	if got := rule.QueryParams[:cap(rule.QueryParams)][1]; got == "mine" {
		t.Error("appending to a merged Scrub wrote into the rule's carriers")
	}
	for e, want := range map[string]bool{"token.abc": true, "token.": true, "chat": false, "x.1": false} {
		if got := per.DropsSubprotocol(e); got != want {
			t.Errorf("DropsSubprotocol(%q) = %v, want %v", e, got, want)
		}
	}
	if !s.DropsSubprotocol("x.1") {
		t.Error("an exact entry is not dropped")
	}
}
