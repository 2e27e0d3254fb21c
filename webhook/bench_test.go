package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd/syncd/webhook"
)

// BenchmarkReceive measures callbacks verified and stored per second: real
// HTTP on loopback, a real PostgreSQL commit before each answer, 64
// callbacks in flight (Sinch posts concurrently), and so MaxInFlight 64
// (webhook.max_in_flight; past it they would be answered 503). It reports
// callbacks/s and the answer's latency, and checks that every one was
// stored.
func BenchmarkReceive(b *testing.B) {
	const inFlight = 64
	rv := newReceiverWith(b, freshStore(b), func(c *webhook.Config) { c.MaxInFlight = inFlight })
	before := rv.state(b).Events
	var seq atomic.Int64
	var mu stdsync.Mutex
	var lat []time.Duration
	transport := &http.Transport{MaxIdleConnsPerHost: inFlight}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	b.SetParallelism(inFlight / runtime.GOMAXPROCS(0)) // ×GOMAXPROCS posting goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			body := updateEvent(testProject, fmt.Sprintf("C%08d", n), "Ann")
			req, err := http.NewRequest(http.MethodPost, rv.srv.URL, bytesReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			webhook.Sign(req.Header, []byte(testSecret), body, fmt.Sprintf("nonce-%d", n), time.Now())
			sent := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
			_ = resp.Body.Close()
			took := time.Since(sent)
			mu.Lock()
			lat = append(lat, took)
			mu.Unlock()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "callbacks/s")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	if got := rv.state(b).Events - before; got != b.N {
		b.Errorf("%d events stored, want %d", got, b.N)
	}
}
