package crm_test

import (
	"fmt"
	"testing"

	"github.com/syncd/syncd/crm"
)

// BenchmarkRecords streams a 100k-row CRM, the full-reconcile read path.
func BenchmarkRecords(b *testing.B) {
	const rows = 100_000
	s := newSource(b)
	recs := make([]crm.Record, rows)
	for i := range recs {
		id := fmt.Sprintf("crm-%07d", i)
		recs[i] = crm.Record{
			ExternalID: id, DisplayName: ptr("Contact " + id), Email: ptr(id + "@example.com"),
			Phone: ptr(fmt.Sprintf("+4670%07d", i)), ChannelPriority: []string{"WHATSAPP", "SMS"},
			ChannelIdentities: []byte(`[{"channel":"MESSENGER","identity":"` + id + `"}]`),
			Language:          ptr("EN_US"), Metadata: ptr(`{"tier":"gold"}`),
		}
	}
	if err := s.UpsertRecords(ctxFor(b), contacts, recs); err != nil {
		b.Fatal(err)
	}
	mustExec(b, s, "VACUUM ANALYZE crm_contacts")

	for _, batch := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			ctx := ctxFor(b)
			for b.Loop() {
				n := 0
				for recs, err := range s.Records(ctx, crm.Source{Relation: contacts}, batch) {
					if err != nil {
						b.Fatal(err)
					}
					n += len(recs)
				}
				if n != rows {
					b.Fatalf("streamed %d rows, want %d", n, rows)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
