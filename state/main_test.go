package state_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Store and Lock a test opens must be closed: a leaked pool shows up
// here as its connection-opener goroutine.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
