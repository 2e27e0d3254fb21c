package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncd/syncd/state"
)

// ctxFor bounds a test's database work so a wedged server fails the test
// rather than hanging the binary.
func ctxFor(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustExec(t testing.TB, s *state.Store, query string, args ...any) {
	t.Helper()
	if err := s.DB().WithContext(ctxFor(t)).Exec(query, args...).Error; err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
}
