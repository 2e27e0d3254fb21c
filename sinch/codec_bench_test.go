package sinch_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/syncd/syncd/sinch"
	"github.com/syncd/syncd/sinch/sinchtest"
)

// benchContact is a contact as a full run patches or creates it.
func benchContact(i int) sinch.Contact {
	c := contact(fmt.Sprintf("crm-%08d", i))
	c.ChannelIdentities = append(c.ChannelIdentities, sinch.ChannelIdentity{Channel: "MESSENGER", Identity: "7968425018576406", AppID: "01EB7TQRD1J1AMPPC4KA4QRZNB"})
	c.ChannelPriority = []string{"SMS", "MESSENGER"}
	c.DisplayName, c.Email, c.Metadata = "Jane Doe", "jane@example.com", `{"tier":"gold"}`
	return c
}

// BenchmarkEncodeContact encodes the body of a create or patch.
func BenchmarkEncodeContact(b *testing.B) {
	c := benchContact(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientListPage is one list call of a full run through the
// client, against the emulator on loopback: request, answer, decoding. The
// allocations are the client's and the emulator's together.
func BenchmarkClientListPage(b *testing.B) {
	emu, srv := sinchtest.Start(b, sinchtest.Options{})
	for i := range 20 {
		emu.Seed(benchContact(i))
	}
	cfg := emu.ClientConfig(srv.URL)
	cfg.RateLimitRPS = 1e6
	c, err := sinch.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.CloseIdleConnections)
	b.ReportAllocs()
	for b.Loop() {
		page, err := c.ListContacts(b.Context(), sinch.ListContactsRequest{PageSize: sinch.MaxPageSize})
		if err != nil || len(page.Contacts) != 20 {
			b.Fatalf("%d contacts, %v", len(page.Contacts), err)
		}
	}
}
