package webhook_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(attackChildEnv) != "" {
		// The listener under attack (attack_test.go), not the tests.
		os.Exit(runAttackChild())
	}
	goleak.VerifyTestMain(m)
}
