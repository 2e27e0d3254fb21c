package sync

import (
	"encoding/binary"
	"slices"
	"unsafe"

	"github.com/syncd/syncd/sinch"
)

// packedContacts holds the contacts of a full run packed into a chunked
// arena, about 130 bytes a contact where decoded ones take 400: a million
// contacts must fit with a million records in a few hundred megabytes. A
// contact is unpacked when the diff looks at it; its strings point into the
// arena, which is only ever appended to.
type packedContacts struct {
	chunks [][]byte
	refs   []packedRef
	// replaced are contacts as Sinch answered the early patches.
	replaced map[int32]sinch.Contact
}

type packedRef struct{ chunk, off uint32 }

// chunkSize is the size of the n-th arena chunk: doubling from 4 KiB to
// 1 MiB, so that a small snapshot stays small and a large one takes few
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
	var buf []byte
	for _, c := range contacts {
		buf = buf[:0]
		for _, s := range []string{c.ID, c.ExternalID, c.DisplayName, c.Email, c.Language, c.Metadata} {
			buf = appendPackedString(buf, s)
		}
		buf = appendIdentities(buf, c.ChannelIdentities)
		if c.ChannelPriority == nil {
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

func (p *packedContacts) reader(i int) packedReader {
	ref := p.refs[i]
	return packedReader{b: p.chunks[ref.chunk], off: int(ref.off)}
}

func (p *packedContacts) len() int { return len(p.refs) }

// contact unpacks the i-th contact.
func (p *packedContacts) contact(i int) sinch.Contact {
	if c, ok := p.replaced[int32(i)]; ok {
		return c
	}
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

// ids returns the id and external_id of the i-th contact, unpacking nothing
// else.
func (p *packedContacts) ids(i int) (id, externalID string) {
	if c, ok := p.replaced[int32(i)]; ok {
		return c.ID, c.ExternalID
	}
	r := p.reader(i)
	return r.str(), r.str()
}

// replace puts Sinch's answers in place of the contacts with their ids;
// a later answer for one id wins.
func (p *packedContacts) replace(answers *packedContacts) {
	if answers.len() == 0 {
		return
	}
	byID := make(map[string]int32, answers.len())
	for j := range answers.len() {
		id, _ := answers.ids(j)
		byID[id] = int32(j)
	}
	if p.replaced == nil {
		p.replaced = make(map[int32]sinch.Contact, answers.len())
	}
	for i := range p.refs {
		if id, _ := p.ids(i); id != "" {
			if j, ok := byID[id]; ok {
				p.replaced[int32(i)] = answers.contact(int(j))
			}
		}
	}
}

// unpack returns every contact, unpacked.
func (p *packedContacts) unpack() []sinch.Contact {
	out := make([]sinch.Contact, 0, p.len())
	for i := range p.refs {
		out = append(out, p.contact(i))
	}
	return slices.Clip(out)
}
