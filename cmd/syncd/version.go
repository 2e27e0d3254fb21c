package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are stamped at build time, as packaging/build does:
//
//	go build -ldflags "-X main.version=1.2.3 -X main.commit=$(git rev-parse HEAD)" ./cmd/syncd
//
// An unstamped commit falls back to the VCS information Go embeds, which a
// build outside a checkout, or with -buildvcs=false, does not have.
var (
	version = "dev"
	commit  = ""
)

func (e *env) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(e.stdout, "syncd %s, commit %s, %s %s/%s\n", version, buildCommit(commit), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

// buildCommit is the stamped commit, else the embedded VCS revision (with
// " (modified)" for a dirty tree), else "unknown".
func buildCommit(stamped string) string {
	if stamped != "" {
		return stamped
	}
	commit, modified := "unknown", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	return commit + modified
}
