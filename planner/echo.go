package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/syncd/syncd/sinch"
)

// ContactHash fingerprints a contact as Sinch shows it (an empty list and a
// missing one alike), so that syncd can tell the echo of its own write (a
// callback carrying exactly the contact Sinch answered the write with) from
// a change someone else made, without reading the contact again.
func ContactHash(c sinch.Contact) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(s)
		b.WriteByte(0)
	}
	field(c.ID)
	field(c.ExternalID)
	field(c.DisplayName)
	field(c.Email)
	field(c.Language)
	field(c.Metadata)
	for _, id := range c.ChannelIdentities {
		b.Write(sinch.AppendIdentityKey(nil, id))
		b.WriteByte(1)
	}
	b.WriteByte(2)
	for _, ch := range c.ChannelPriority {
		field(ch)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16])
}
