package planner

import (
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"unsafe"

	"github.com/syncd/syncd/sinch"
)

// packedRecords holds normalised records packed into a chunked arena, about
// 140 bytes a record where a Desired with its strings takes 450. A record
// is unpacked when the diff compares it; its strings point into the arena,
// which is only ever appended to.
type packedRecords struct {
	chunks  [][]byte
	refs    []packedRef
	rejects map[row]*Rejection
	// lists are the few distinct channel lists records carry (managed
	// channels, channel priorities), shared among all of them and packed as
	// their number; capped so that an append copies.
	lists   [][]string
	listIDs map[string]int
}

const (
	recRejected = 1 << iota
	recDeleted
	recName
	recEmail
	recLanguage
	recMetadata
	recPriority
	recHexHash // the hash is 32 hex digits, packed as 16 bytes
)

// row is a source row: its position in the arena, in the order read.
type row int32

func (p *packedRecords) len() int { return len(p.refs) }

func (p *packedRecords) add(n normalized, scratch []byte) []byte {
	b := scratch[:0]
	d := &n.want
	var flags byte
	set := func(bit byte, ok bool) {
		if ok {
			flags |= bit
		}
	}
	set(recRejected, n.rej != nil)
	set(recDeleted, d.Deleted)
	set(recName, d.DisplayName != nil)
	set(recEmail, d.Email != nil)
	set(recLanguage, d.Language != nil)
	set(recMetadata, d.Metadata != nil)
	set(recPriority, d.ChannelPriority != nil)
	b = append(b, flags)
	if n.rej != nil {
		b = appendPackedString(b, n.rej.ExternalID)
		if p.rejects == nil {
			p.rejects = make(map[row]*Rejection)
		}
		p.rejects[row(len(p.refs))] = n.rej
		return p.put(b)
	}
	b = appendPackedString(b, d.ExternalID)
	if raw, ok := hexHash(d.Hash); ok {
		b[0] |= recHexHash
		b = append(b, raw[:]...)
	} else {
		b = appendPackedString(b, d.Hash)
	}
	for _, f := range []*string{d.DisplayName, d.Email, d.Language, d.Metadata} {
		if f != nil {
			b = appendPackedString(b, *f)
		}
	}
	b = appendIdentities(b, d.Identities)
	b = p.appendChannelList(b, d.Managed)
	if d.ChannelPriority != nil {
		b = p.appendChannelList(b, d.ChannelPriority)
	}
	return p.put(b)
}

func appendChannel(b []byte, ch string) []byte {
	if code, ok := channelCodes[ch]; ok {
		return append(b, code)
	}
	return appendPackedString(append(b, 0), ch)
}

// appendChannelList packs a list of channels as the number of the list,
// shared among the records that carry it.
func (p *packedRecords) appendChannelList(b []byte, list []string) []byte {
	var key []byte
	for _, ch := range list {
		key = append(key, ch...)
		key = append(key, 0)
	}
	id, ok := p.listIDs[string(key)]
	if !ok {
		if p.listIDs == nil {
			p.listIDs = make(map[string]int)
		}
		id = len(p.lists)
		p.listIDs[string(key)] = id
		p.lists = append(p.lists, slices.Clip(slices.Clone(list)))
	}
	return binary.AppendUvarint(b, uint64(id))
}

// appendIdentities packs identities; an identity equal to the one before
// (a phone number on SMS and on WHATSAPP) takes one byte.
func appendIdentities(b []byte, ids []sinch.ChannelIdentity) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for j, id := range ids {
		b = appendChannel(b, id.Channel)
		if j > 0 && id.Identity == ids[j-1].Identity {
			b = append(b, 0)
		} else {
			b = binary.AppendUvarint(b, uint64(len(id.Identity))+1)
			b = append(b, id.Identity...)
		}
		b = appendPackedString(b, id.AppID)
	}
	return b
}

// readIdentities unpacks what appendIdentities packed, calling fn with each.
func (r *packedReader) identities(fn func(sinch.ChannelIdentity)) {
	var prev string
	for range r.uvarint() {
		var id sinch.ChannelIdentity
		if code := r.b[r.off]; code > 0 {
			r.off++
			id.Channel = sinch.Channels[code-1]
		} else {
			r.off++
			id.Channel = r.str()
		}
		if n := r.uvarint(); n == 0 {
			id.Identity = prev
		} else if n > 1 {
			id.Identity = unsafe.String(&r.b[r.off], n-1)
			r.off += n - 1
		}
		prev = id.Identity
		id.AppID = r.str()
		fn(id)
	}
}

// hexHash reads a content hash as Desired.hash writes it.
func hexHash(h string) (raw [16]byte, ok bool) {
	if len(h) != 32 || strings.ToLower(h) != h {
		return raw, false
	}
	_, err := hex.Decode(raw[:], []byte(h))
	return raw, err == nil
}

// readHash reads the hash packed after the external_id.
func (r *packedReader) hash(flags byte) string {
	if flags&recHexHash == 0 {
		return r.str()
	}
	h := hex.EncodeToString(r.b[r.off : r.off+16])
	r.off += 16
	return h
}

// skipHash steps over the hash.
func (r *packedReader) skipHash(flags byte) {
	if flags&recHexHash == 0 {
		r.str()
		return
	}
	r.off += 16
}

func (p *packedRecords) put(b []byte) []byte {
	n := len(p.chunks)
	if n == 0 || len(p.chunks[n-1])+len(b) > cap(p.chunks[n-1]) {
		p.chunks = append(p.chunks, make([]byte, 0, max(chunkSize(n), len(b))))
		n++
	}
	chunk := &p.chunks[n-1]
	p.refs = append(p.refs, packedRef{chunk: uint32(n - 1), off: uint32(len(*chunk))})
	*chunk = append(*chunk, b...)
	return b
}

func (p *packedRecords) reader(i row) (packedReader, byte) {
	ref := p.refs[i]
	r := packedReader{b: p.chunks[ref.chunk], off: int(ref.off)}
	flags := r.b[r.off]
	r.off++
	return r, flags
}

// externalID is row i's external_id, valid or not.
func (p *packedRecords) externalID(i row) string {
	r, _ := p.reader(i)
	return r.str()
}

// rejection is why row i was rejected; nil for a valid one.
func (p *packedRecords) rejection(i row) *Rejection { return p.rejects[i] }

func (p *packedRecords) deleted(i row) bool {
	_, flags := p.reader(i)
	return flags&recDeleted != 0
}

// hashIs reports whether h is the content hash of row i.
func (p *packedRecords) hashIs(i row, h string) bool {
	r, flags := p.reader(i)
	r.str()
	if flags&recHexHash == 0 {
		return r.str() == h
	}
	raw, ok := hexHash(h)
	return ok && string(raw[:]) == string(r.b[r.off:r.off+16])
}

// eachIdentity calls fn with each identity of row i, which must
// be valid.
func (p *packedRecords) eachIdentity(i row, fn func(sinch.ChannelIdentity)) {
	r, flags := p.reader(i)
	r.str()
	r.skipHash(flags)
	for _, bit := range []byte{recName, recEmail, recLanguage, recMetadata} {
		if flags&bit != 0 {
			r.str()
		}
	}
	r.identities(fn)
}

// desired unpacks row i, which must be valid.
func (p *packedRecords) desired(i row) Desired {
	r, flags := p.reader(i)
	d := Desired{ExternalID: r.str(), Deleted: flags&recDeleted != 0}
	d.Hash = r.hash(flags)
	var box *[4]string
	for j, bit := range []byte{recName, recEmail, recLanguage, recMetadata} {
		if flags&bit == 0 {
			continue
		}
		if box == nil {
			box = new([4]string)
		}
		box[j] = r.str()
		switch bit {
		case recName:
			d.DisplayName = &box[j]
		case recEmail:
			d.Email = &box[j]
		case recLanguage:
			d.Language = &box[j]
		case recMetadata:
			d.Metadata = &box[j]
		}
	}
	if n := int(r.b[r.off]); n > 0 && n < 0x80 { // the count's one-byte uvarint
		d.Identities = make([]sinch.ChannelIdentity, 0, n)
	}
	r.identities(func(id sinch.ChannelIdentity) { d.Identities = append(d.Identities, id) })
	d.Managed = p.lists[r.uvarint()]
	if flags&recPriority != 0 {
		d.ChannelPriority = p.lists[r.uvarint()]
		if d.ChannelPriority == nil {
			d.ChannelPriority = []string{}
		}
	}
	return d
}
