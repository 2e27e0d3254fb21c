package statetest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReadmeSQL returns the SQL blocks of the module's README.md that mention
// what, in order, so that tests run the README's recipes as written.
func ReadmeSQL(tb testing.TB, what string) []string {
	tb.Helper()
	path, err := readmePath()
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var blocks []string
	parts := strings.Split(string(data), "```sql\n")
	for _, p := range parts[1:] {
		block, _, ok := strings.Cut(p, "```")
		if !ok {
			tb.Fatal("README.md: an unterminated sql block")
		}
		if strings.Contains(block, what) {
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// readmePath finds README.md beside go.mod, above the test's directory.
func readmePath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "README.md"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("statetest: no go.mod above the test's directory")
		}
		dir = parent
	}
}
