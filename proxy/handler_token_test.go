package proxy

import (
	"net/http"
	"testing"
)

// TestHeaderHasToken: a token anywhere in a comma-separated list, on any
// of the header's lines, in any case and with spaces around it; not a
// token that only contains or starts like it.
func TestHeaderHasToken(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  bool
	}{
		{[]string{"Upgrade"}, true},
		{[]string{"keep-alive, Upgrade"}, true},
		{[]string{"upgrade,keep-alive"}, true},
		{[]string{"keep-alive", " UPGRADE "}, true},
		{[]string{",,upgrade,"}, true},
		{[]string{"keep-alive"}, false},
		{[]string{"upgrades, keep-alive"}, false},
		{[]string{"up grade"}, false},
		{[]string{""}, false},
		{[]string{","}, false},
		{nil, false},
	} {
		h := http.Header{}
		for _, l := range tc.lines {
			h.Add("Connection", l)
		}
		if got := headerHasToken(h, "Connection", "upgrade"); got != tc.want {
			t.Errorf("Connection %q has upgrade = %v, want %v", tc.lines, got, tc.want)
		}
	}
}

// TestHeaderHasTokenAllocatesNothing: the lists are read in place.
func TestHeaderHasTokenAllocatesNothing(t *testing.T) {
	h := http.Header{"Connection": {"keep-alive, x-a, x-b"}, "Upgrade": {"websocket"}}
	r := &http.Request{Header: h}
	if n := testing.AllocsPerRun(100, func() { isWebSocketUpgrade(r) }); n != 0 {
		t.Errorf("isWebSocketUpgrade allocated %v times per call, want 0", n)
	}
}
