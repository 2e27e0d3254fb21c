package main

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name            string
		version, commit string
		want            string
	}{
		{"stamped", "1.2.3", "0123abc", fmt.Sprintf("syncd 1.2.3, commit 0123abc, %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)},
		// The test binary is built without VCS information.
		{"unstamped", "dev", "", fmt.Sprintf("syncd dev, commit unknown, %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldVersion, oldCommit := version, commit
			t.Cleanup(func() { version, commit = oldVersion, oldCommit })
			version, commit = tt.version, tt.commit
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"version"}, &out, &errOut, func(string) string { return "" })
			if code != 0 || out.String() != tt.want {
				t.Errorf("syncd version: exit %d, stdout %q (stderr %q), want %q", code, out.String(), errOut.String(), tt.want)
			}
		})
	}
}
