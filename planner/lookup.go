package planner

import (
	"iter"
	"slices"
	"strings"

	"github.com/syncd/syncd/sinch"
)

// LookupKey is the key under which syncd finds the CRM records and Sinch
// contacts that hold an identity, in its index of the records' identities:
// a phone number is one key whatever channel carries it ("tel:+46..."),
// since two records with one number share it on every channel; any other
// identity is its channel and identity, and its app where the channel
// scopes identities to one. Keys are text, as PostgreSQL stores them; an
// identity that holds a NUL byte has none ("").
func LookupKey(id sinch.ChannelIdentity) string {
	if strings.IndexByte(id.Identity, 0) >= 0 || strings.IndexByte(id.AppID, 0) >= 0 {
		return ""
	}
	if sinch.IsPhoneChannel(id.Channel) {
		return "tel:+" + strings.TrimPrefix(strings.TrimSpace(id.Identity), "+")
	}
	key := id.Channel + ":" + id.Identity
	if sinch.IsAppScopedChannel(id.Channel) {
		key += "@" + id.AppID
	}
	return key
}

// LookupKeys are the distinct lookup keys of identities, sorted.
func LookupKeys(ids []sinch.ChannelIdentity) []string {
	return AppendLookupKeys(make([]string, 0, len(ids)), ids)
}

// AppendLookupKeys appends the distinct lookup keys of ids to keys, which
// it sorts, and returns it. A phone number carried on several channels (a
// contact's SMS and WhatsApp) is one key, built once.
func AppendLookupKeys(keys []string, ids []sinch.ChannelIdentity) []string {
	from := len(keys)
	for i, id := range ids {
		if sinch.IsPhoneChannel(id.Channel) && slices.ContainsFunc(ids[:i], func(o sinch.ChannelIdentity) bool {
			return sinch.IsPhoneChannel(o.Channel) && o.Identity == id.Identity
		}) {
			continue
		}
		if k := LookupKey(id); k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys[from:])
	return slices.Compact(keys)
}

// Identities yields, for each row of the source the index holds, the
// lookup keys of its identities, for syncd's index of the records'
// identities: those of a live record, none for a row that is not live
// (deleted, rejected, duplicated), which leaves the index. With all unset,
// a live record whose stored link carries its content hash is skipped: its
// identities were indexed when that content was read. The keys slice is
// reused: a caller that keeps it past its iteration clones it.
func (s *Index) Identities(all bool) iter.Seq2[string, []string] {
	return func(yield func(string, []string) bool) {
		s.seal()
		var ids []sinch.ChannelIdentity
		var buf []string
		for i, r := range s.keys {
			ext := s.recs.externalID(r)
			var keys []string
			if k, ok := s.states[i].live(); ok {
				if !all && s.linkFresh[k] {
					continue
				}
				ids = ids[:0]
				s.recs.eachIdentity(s.live[k], func(id sinch.ChannelIdentity) { ids = append(ids, id) })
				buf = AppendLookupKeys(buf[:0], ids)
				keys = buf
			}
			if !yield(ext, keys) {
				return
			}
		}
	}
}
