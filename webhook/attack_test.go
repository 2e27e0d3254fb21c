package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/state"
	"github.com/syncd/syncd/state/statetest"
	"github.com/syncd/syncd/webhook"
)

// The attack of issue 22: many connections, each with signature headers
// that look right (a fresh timestamp, a nonce, a well-formed but wrong
// MAC), declaring a body of MaxBody, sending all of it but the last KiB,
// then stalling. Before the listener bounded the bodies it reads at once,
// each such connection held about 1.15 MiB for up to 30 s, and 100 / 200 /
// 400 of them took the process to 141 / 256 / 485 MiB.
//
// The listener runs in a process of its own, as syncd run wires it
// (webhook.NewServer, a Handler with its default bounds, a PostgreSQL
// store), so that its memory is its alone; the test is the attacker. The
// listener's body deadline is an hour, longer than the attack, so that
// every place it admits stays taken to the end: the worst case.

const (
	// attackChildEnv, set to a database URL, makes the test binary the
	// listener under attack (see TestMain).
	attackChildEnv = "SYNCD_WEBHOOK_ATTACK_DATABASE_URL"
	// attackMaxInFlightEnv is the listener's MaxInFlight (default: the
	// default), for the benchmark that lifts the bound.
	attackMaxInFlightEnv = "SYNCD_WEBHOOK_ATTACK_MAX_IN_FLIGHT"
	// memoryBound is what the listener may hold under the attack.
	memoryBound = 100 << 20
)

// attackStatus is what the listener under attack tells about itself.
type attackStatus struct {
	Read     int64 `json:"read"`      // bytes read from its connections
	InFlight int   `json:"in_flight"` // callbacks admitted and not done
	Busy     int   `json:"busy"`      // callbacks turned away, unread
	// Peaks: of what the Go runtime holds from the OS (mapped and not
	// released), of live and unswept heap objects (both sampled every
	// 2 ms), and the kernel's peak resident set (VmHWM).
	PeakGo   uint64 `json:"peak_go"`
	PeakHeap uint64 `json:"peak_heap"`
	PeakRSS  uint64 `json:"peak_rss"`
}

// busyCounter counts the callbacks turned away for being one too many.
type busyCounter struct{ n atomic.Int64 }

func (*busyCounter) CallbackReceived(string, bool) {}
func (b *busyCounter) CallbackRefused(reason string) {
	if reason == webhook.ReasonBusy {
		b.n.Add(1)
	}
}

// countingListener counts the bytes read from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// runAttackChild is the listener under attack. It prints the listener's
// address and its status address, and serves until its stdin closes.
func runAttackChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "attack child:", err); return 1 }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := state.Open(ctx, os.Getenv(attackChildEnv), zap.NewNop())
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	maxInFlight, _ := strconv.Atoi(os.Getenv(attackMaxInFlightEnv))
	busy := &busyCounter{}
	h := webhook.NewHandler(webhook.Config{Secret: testSecret, ProjectID: testProject, Store: webhook.NewStore(st.Events()), Observer: busy,
		MaxInFlight: maxInFlight, BodyTimeout: time.Hour})
	go h.Run(ctx)
	mux := http.NewServeMux()
	mux.Handle("/webhooks/sinch", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	var read atomic.Int64
	srv := webhook.NewServer(mux, time.Hour)
	go srv.Serve(countingListener{ln, &read})
	defer srv.Close()

	var mu sync.Mutex
	var peakGo, peakHeap uint64
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}}
	sample := func() {
		metrics.Read(samples)
		held, heap := samples[0].Value.Uint64()-samples[1].Value.Uint64(), samples[2].Value.Uint64()
		mu.Lock()
		peakGo, peakHeap = max(peakGo, held), max(peakHeap, heap)
		mu.Unlock()
	}
	go func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sample()
			}
		}
	}()
	statusLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	status := &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		sample()
		mu.Lock()
		s := attackStatus{Read: read.Load(), InFlight: h.InFlight(), Busy: int(busy.n.Load()), PeakGo: peakGo, PeakHeap: peakHeap, PeakRSS: peakRSS()}
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(s)
	})}
	go status.Serve(statusLn)
	defer status.Close()

	fmt.Printf("%s %s\n", ln.Addr(), statusLn.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// peakRSS is the process's VmHWM, in bytes.
func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// listenerUnderAttack starts the listener in a process of its own, with
// maxInFlight (0: the default), and returns its address and a function
// that reads its status.
func listenerUnderAttack(tb testing.TB, databaseURL string, maxInFlight int) (addr string, status func() attackStatus) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), attackChildEnv+"="+databaseURL, attackMaxInFlightEnv+"="+strconv.Itoa(maxInFlight))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("the listener process: %v", err)
		}
	})
	var statusAddr string
	if _, err := fmt.Fscan(bufio.NewReader(stdout), &addr, &statusAddr); err != nil {
		tb.Fatalf("the listener process did not start: %v", err)
	}
	// No connection is kept: none outlives the test.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return addr, func() attackStatus {
		resp, err := client.Get("http://" + statusAddr)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		var s attackStatus
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			tb.Fatal(err)
		}
		return s
	}
}

// attack opens conns connections to addr, each sending what the attack
// sends, and returns once it has written; closing them is left to
// tb.Cleanup. It returns the bytes of body each sends.
func attack(tb testing.TB, addr string, conns int) int {
	tb.Helper()
	payload := bytes.Repeat([]byte("x"), webhook.MaxBody-1024)
	mac := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	var wg sync.WaitGroup
	for i := range conns {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatalf("connection %d: %v", i, err)
		}
		tb.Cleanup(func() { _ = conn.Close() })
		head := fmt.Sprintf("POST /webhooks/sinch HTTP/1.1\r\nHost: syncd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
			"%s: %d\r\n%s: attack-%d\r\n%s: %s\r\n%s: %s\r\n\r\n", webhook.MaxBody,
			webhook.HeaderTimestamp, time.Now().Unix(), webhook.HeaderNonce, i, webhook.HeaderAlgorithm, webhook.AlgorithmSHA256, webhook.HeaderSignature, mac)
		wg.Go(func() {
			// A connection turned away is closed under the write: the
			// attacker does not care.
			if _, err := io.WriteString(conn, head); err == nil {
				_, _ = conn.Write(payload)
			}
		})
	}
	wg.Wait()
	return len(payload)
}

// TestListenerMemoryUnderAttack: under the attack, the listener holds what
// its bounds allow, not what the attacker sends. At most MaxInFlight
// bodies are read at once, the rest are turned away unread, and the peak
// of what the process holds stays under 100 MB at 100, 200 and 400
// connections. The race detector's shadow memory is the kernel's and not
// the Go runtime's: with -race only the runtime's own figure is held to
// the bound.
func TestListenerMemoryUnderAttack(t *testing.T) {
	dbURL := statetest.NewDatabase(t)
	for _, conns := range []int{100, 200, 400} {
		t.Run(fmt.Sprint(conns, " connections"), func(t *testing.T) {
			addr, status := listenerUnderAttack(t, dbURL, 0)
			sent := attack(t, addr, conns)
			var s attackStatus
			until(t, "the attack has filled every place and been turned away from the rest", func() bool {
				s = status()
				return s.InFlight == webhook.DefaultMaxInFlight && s.Busy == conns-webhook.DefaultMaxInFlight &&
					s.Read >= int64(webhook.DefaultMaxInFlight*sent)
			})
			t.Logf("%d connections: %d bodies being read (%.1f MiB read), %d turned away; peaks: Go runtime %.1f MiB, heap objects %.1f MiB, RSS %.1f MiB",
				conns, s.InFlight, mib(uint64(s.Read)), s.Busy, mib(s.PeakGo), mib(s.PeakHeap), mib(s.PeakRSS))
			if s.PeakGo > memoryBound {
				t.Errorf("the Go runtime held %.1f MiB at its peak, over %d MiB", mib(s.PeakGo), memoryBound>>20)
			}
			if !raceEnabled && s.PeakRSS > memoryBound {
				t.Errorf("peak RSS %.1f MiB, over %d MiB", mib(s.PeakRSS), memoryBound>>20)
			}
		})
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// BenchmarkListenerUnderAttack reports the listener's peaks under the
// attack at 400 connections, with its default bound and with the bound
// lifted (every connection read at once, as before it had one). Memory, not
// time, is the figure: each iteration is one attack on a fresh process.
//
//	go test -run XXX -bench ListenerUnderAttack -benchtime 1x ./webhook/
func BenchmarkListenerUnderAttack(b *testing.B) {
	dbURL := statetest.NewDatabase(b)
	const conns = 400
	for _, bound := range []struct {
		name        string
		maxInFlight int
	}{{"default", webhook.DefaultMaxInFlight}, {"lifted", conns}} {
		b.Run(bound.name, func(b *testing.B) {
			var peakGo, peakRSS uint64
			for range b.N {
				addr, status := listenerUnderAttack(b, dbURL, bound.maxInFlight)
				sent := attack(b, addr, conns)
				var s attackStatus
				until(b, "the attack has settled", func() bool {
					s = status()
					return s.InFlight == bound.maxInFlight && s.Busy == conns-bound.maxInFlight && s.Read >= int64(bound.maxInFlight*sent)
				})
				peakGo, peakRSS = max(peakGo, s.PeakGo), max(peakRSS, s.PeakRSS)
			}
			b.ReportMetric(mib(peakGo), "peak-go-MiB")
			b.ReportMetric(mib(peakRSS), "peak-rss-MiB")
		})
	}
}
