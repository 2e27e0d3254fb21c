// Command sdkcheck checks the emulator (sinch/sinchtest) against Sinch's
// official Node SDK, @sinch/sdk-core: the SDK's client calls the emulator's
// contacts, webhooks and token endpoints, and the SDK's own validator and
// parser read the emulator's callbacks. It is a check, not a dependency of
// syncd: .ci/verify-emulator installs the SDK (npm ci in this directory)
// and runs it.
//
//	(cd bench/sdkcheck && npm ci) && go run ./bench/sdkcheck
//
// It serves the emulator on loopback, its clock movable through
// /_check/advance (so that the SDK meets an expired token), and runs
// check.js with node, which makes the checks and prints one line each. It
// exits 1 if a check failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/syncd/syncd/sinch/sinchtest"
)

func main() {
	dir := flag.String("dir", filepath.Join("bench", "sdkcheck"), "the directory of check.js and its node_modules")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "sdkcheck:", err)
		os.Exit(1)
	}
}

// clock is the emulator's: real time, moved on by hand.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

func run(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@sinch", "sdk-core")); err != nil {
		return fmt.Errorf("the Node SDK is not installed in %s (run npm ci there): %w", dir, err)
	}
	clk := &clock{}
	emu := sinchtest.New(sinchtest.Options{Clock: clk.now})
	defer emu.Close()
	mux := http.NewServeMux()
	mux.Handle("/", emu)
	mux.HandleFunc("POST /_check/advance", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		clk.advance(d)
	})
	mux.HandleFunc("GET /_check/calls", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(emu.CallCounts())
	})
	mux.HandleFunc("GET /_check/idle", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		if err := emu.Idle(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	cmd := exec.Command("node", "check.js")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"EMU_BASE=http://"+ln.Addr().String(),
		"EMU_PROJECT="+sinchtest.DefaultProjectID,
		"EMU_KEY_ID="+sinchtest.DefaultKeyID,
		"EMU_KEY_SECRET="+sinchtest.DefaultKeySecret,
	)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("check.js failed (exit %d)", exit.ExitCode())
		}
		return fmt.Errorf("node: %w", err)
	}
	return nil
}
