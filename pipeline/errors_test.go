package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// TestStatusKinds: a StatusKind matches every *Error of its status through
// any wrapping and no other; StatusOf and AsError read a bare kind as its
// status.
func TestStatusKinds(t *testing.T) {
	denied := fmt.Errorf("stage: %w", Forbidden("not in the group", nil))
	for _, tc := range []struct {
		err  error
		kind StatusKind
		want bool
	}{
		{denied, ErrForbidden, true},
		{denied, ErrUnauthorized, false},
		{Unavailable("down", context.DeadlineExceeded), ErrServiceUnavailable, true},
		{NewError(http.StatusBadRequest, "", nil), ErrBadRequest, true},
		{errors.New("plain"), ErrInternal, false},
		{fmt.Errorf("wrapped: %w", ErrGatewayTimeout), ErrGatewayTimeout, true},
	} {
		if got := errors.Is(tc.err, tc.kind); got != tc.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", tc.err, tc.kind, got, tc.want)
		}
	}
	if got := StatusOf(fmt.Errorf("x: %w", ErrNotFound)); got != http.StatusNotFound {
		t.Errorf("StatusOf(wrapped ErrNotFound) = %d, want 404", got)
	}
	if e := AsError(ErrForbidden); e.Status != http.StatusForbidden || e.Error() != "Forbidden" {
		t.Errorf("AsError(ErrForbidden) = %d %q, want 403 Forbidden", e.Status, e.Error())
	}
}

// TestSentinel: a Sentinel is found through wrapping by value, and two
// sentinels with different texts differ.
func TestSentinel(t *testing.T) {
	const a, b Sentinel = "a", "b"
	err := fmt.Errorf("ctx: %w", NewError(http.StatusForbidden, "", a))
	if !errors.Is(err, a) || errors.Is(err, b) {
		t.Errorf("errors.Is through *Error's cause: a %v, b %v; want true, false", errors.Is(err, a), errors.Is(err, b))
	}
	if err.Error() != "ctx: Forbidden: a" {
		t.Errorf("text %q", err.Error())
	}
}
