package sinch_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// statusCounter counts 429 answers.
type statusCounter struct{ tooMany atomic.Int64 }

func (s *statusCounter) ObserveCall(_ string, status int, _ time.Duration) {
	if status == http.StatusTooManyRequests {
		s.tooMany.Add(1)
	}
}

// BenchmarkClientRate measures the rate the client achieves against an
// emulator enforcing the same limit server-side. A client that paces itself
// right gets close to the limit with no 429s.
func BenchmarkClientRate(b *testing.B) {
	for _, rps := range []float64{50, 200} {
		b.Run(fmt.Sprintf("limit=%v", rps), func(b *testing.B) {
			emu, srv := sinchtest.Start(b, sinchtest.Options{Faults: sinchtest.Faults{RateLimitRPS: rps}})
			id := emu.Seed(contact("x"))[0].ID
			counter := &statusCounter{}
			cfg := emu.ClientConfig(srv.URL)
			cfg.RateLimitRPS = rps
			cfg.Observer = counter
			c, err := sinch.NewClient(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.CloseIdleConnections)

			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 8 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := c.GetContact(b.Context(), id); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(counter.tooMany.Load()), "429s")
		})
	}
}

// BenchmarkDecodeListPage decodes a full page of 20 contacts as the
// emulator answers it.
func BenchmarkDecodeListPage(b *testing.B) {
	emu, srv := sinchtest.Start(b, sinchtest.Options{})
	for i := range 20 {
		c := contact(fmt.Sprintf("crm-%d", i))
		c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "7968425018576406", AppID: "01EB7TQRD1J1AMPPC4KA4QRZNB"})
		c.ChannelPriority = []string{"SMS", "MESSENGER"}
		c.DisplayName, c.Email, c.Metadata = "Jane Doe", "jane@example.com", `{"tier":"gold"}`
		emu.Seed(c)
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/projects/"+sinchtest.DefaultProjectID+"/contacts?page_size=20", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth(sinchtest.DefaultKeyID, sinchtest.DefaultKeySecret)
	resp, err := srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		var out sinch.ListContactsResponse
		if err := json.Unmarshal(page, &out); err != nil || len(out.Contacts) != 20 {
			b.Fatalf("decoded %d contacts: %v", len(out.Contacts), err)
		}
	}
}
