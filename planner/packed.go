package planner

import (
	"encoding/binary"
	"unsafe"

	"github.com/syncd/syncd/sinch"
)

// packedContacts holds contacts packed into a chunked arena, about 130
// bytes a contact where decoded ones take 400. A contact is unpacked when the
// diff looks at it; its strings point into the arena, which is only ever
// appended to.
type packedContacts struct {
	chunks  [][]byte
	refs    []packedRef
	byID    map[string]slot // by id, built on first use; covers refs[:indexed]
	indexed slot
	scratch []byte // where add packs a contact before it goes into a chunk
}

// slot is a contact held in full: its position in the arena, in the order
// added.
type slot int32

type packedRef struct{ chunk, off uint32 }

// chunkSize is the size of the n-th arena chunk: doubling from 4 KiB to
// 1 MiB, so that a small index stays small and a large one takes few
// chunks. A full chunk is never grown (its strings would move): the next
// one starts.
func chunkSize(n int) int { return 4 << 10 << min(n, 8) }

// channelCodes numbers the known channels, so that an identity's channel
// takes one byte.
var channelCodes = func() map[string]byte {
	m := make(map[string]byte, len(sinch.Channels))
	for i, ch := range sinch.Channels {
		m[ch] = byte(i + 1)
	}
	return m
}()

func (p *packedContacts) add(contacts []sinch.Contact) {
	buf := p.scratch
	for _, c := range contacts {
		buf = buf[:0]
		for _, s := range []string{c.ID, c.ExternalID, c.DisplayName, c.Email, c.Language, c.Metadata} {
			buf = appendPackedString(buf, s)
		}
		buf = appendIdentities(buf, c.ChannelIdentities)
		if len(c.ChannelPriority) == 0 { // Sinch's [] is no priority, as nil is
			buf = append(buf, 0)
		} else {
			buf = binary.AppendUvarint(buf, uint64(len(c.ChannelPriority))+1)
			for _, ch := range c.ChannelPriority {
				buf = appendPackedString(buf, ch)
			}
		}
		n := len(p.chunks)
		if n == 0 || len(p.chunks[n-1])+len(buf) > cap(p.chunks[n-1]) {
			p.chunks = append(p.chunks, make([]byte, 0, max(chunkSize(n), len(buf))))
			n++
		}
		chunk := &p.chunks[n-1]
		p.refs = append(p.refs, packedRef{chunk: uint32(n - 1), off: uint32(len(*chunk))})
		*chunk = append(*chunk, buf...)
	}
	p.scratch = buf[:0]
}

func appendPackedString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// packedReader walks one packed contact.
type packedReader struct {
	b   []byte
	off int
}

func (r *packedReader) uvarint() int {
	v, n := binary.Uvarint(r.b[r.off:])
	r.off += n
	return int(v)
}

func (r *packedReader) str() string {
	n := r.uvarint()
	if n == 0 {
		return ""
	}
	s := unsafe.String(&r.b[r.off], n)
	r.off += n
	return s
}

func (p *packedContacts) reader(i slot) packedReader {
	ref := p.refs[i]
	return packedReader{b: p.chunks[ref.chunk], off: int(ref.off)}
}

func (p *packedContacts) len() int { return len(p.refs) }

// slots is the number of contacts held, as the end of the range of slots.
func (p *packedContacts) slots() slot { return slot(len(p.refs)) }

// contact unpacks the contact in slot i.
func (p *packedContacts) contact(i slot) sinch.Contact {
	r := p.reader(i)
	c := sinch.Contact{ID: r.str(), ExternalID: r.str(), DisplayName: r.str(), Email: r.str(), Language: r.str(), Metadata: r.str()}
	if n := int(r.b[r.off]); n > 0 && n < 0x80 { // the count's one-byte uvarint
		c.ChannelIdentities = make([]sinch.ChannelIdentity, 0, n)
	}
	r.identities(func(id sinch.ChannelIdentity) { c.ChannelIdentities = append(c.ChannelIdentities, id) })
	if n := r.uvarint(); n > 0 {
		c.ChannelPriority = make([]string, n-1)
		for j := range c.ChannelPriority {
			c.ChannelPriority[j] = r.str()
		}
	}
	return c
}

// ids returns the id and external_id of the contact in slot i, unpacking nothing
// else.
func (p *packedContacts) ids(i slot) (id, externalID string) {
	r := p.reader(i)
	return r.str(), r.str()
}

// index is the position of the last contact added with this id.
func (p *packedContacts) index(id string) (slot, bool) {
	if p.byID == nil {
		p.byID = make(map[string]slot, len(p.refs))
	}
	for ; p.indexed < p.slots(); p.indexed++ {
		cid, _ := p.ids(p.indexed)
		p.byID[cid] = p.indexed
	}
	i, ok := p.byID[id]
	return i, ok
}
