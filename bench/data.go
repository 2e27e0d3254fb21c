package main

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/sinch"
)

// The mix, by CRM row index i, on i%100 (and i%1000 for rejects):
//
//	 0..89  in sync: one linked contact equal to the row
//	90..94  changed: one linked contact whose display name and e-mail drifted
//	95..96  missing: no contact (create)
//	    97  duplicate: the linked contact plus a second one with the same external_id (merge)
//	    98  auto-created: no linked contact, but one Sinch created for the sender (adopt)
//	    99  tombstoned: deleted_at set, its contact still there (delete)
//
// and per 100 rows, outside the CRM: one orphan whose row is gone (delete)
// and one auto-created contact of an unknown sender (left alone). One row in
// a thousand has an unparsable phone (rejected, its contact kept). 2% of the
// rows have no contact at all, 1% share an external_id, 2% of contacts are
// orphans and 2% have no external_id; a Sinch project of 1.01·N contacts.
const (
	kindInSync = iota
	kindChanged
	kindMissing
	kindDuplicate
	kindAdopt
	kindTombstone
)

func kindOf(i int) int {
	switch m := i % 100; {
	case m < 90:
		return kindInSync
	case m < 95:
		return kindChanged
	case m < 97:
		return kindMissing
	case m == 97:
		return kindDuplicate
	case m == 98:
		return kindAdopt
	}
	return kindTombstone
}

// loadedAt is when the rows claim to have been written: a day before the
// run, so that an incremental run reads only what the bench changes.
var loadedAt = time.Now().Add(-24 * time.Hour).Truncate(time.Second)

func externalID(i int) string { return "crm-" + pad(i, 8) }
func phone(i int) string      { return "+4670" + pad(i, 7) }
func strangerPhone(i int) string {
	return "+4673" + pad(i, 7)
}

func pad(i, width int) string {
	s := strconv.Itoa(i)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

func str(s string) *string { return &s }

// record is CRM row i.
func record(i int) crm.Record {
	ext := externalID(i)
	lang := "EN_US"
	if i%3 == 0 {
		lang = "SV"
	}
	r := crm.Record{
		ExternalID:  ext,
		DisplayName: str("Contact " + strconv.Itoa(i)),
		Email:       str("contact" + strconv.Itoa(i) + "@example.com"),
		Phone:       str(phone(i)),
		Language:    str(lang),
		UpdatedAt:   loadedAt,
	}
	if i%10 == 0 {
		r.Metadata = str(`{"tier":"gold","since":` + strconv.Itoa(2000+i%25) + `}`)
	}
	if i%1000 == 950 {
		r.Phone = str("+46 70 12") // too short: rejected
	}
	if kindOf(i) == kindTombstone {
		r.DeletedAt = &loadedAt
	}
	return r
}

// contactID is the Sinch id of the j-th seeded contact: a ULID from a fixed
// day in the past, so seeded contacts list in seeding order and before any
// contact a run creates.
func contactID(j int) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)))
	binary.BigEndian.PutUint64(u[8:], uint64(j))
	return u.String()
}

// mirror is the contact that matches row i exactly, as Sinch holds it.
func mirror(i int, r crm.Record) sinch.Contact {
	p := phone(i)[1:]
	c := sinch.Contact{
		ExternalID:        r.ExternalID,
		DisplayName:       *r.DisplayName,
		Email:             *r.Email,
		Language:          *r.Language,
		ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: p}, {Channel: "WHATSAPP", Identity: p}},
	}
	if r.Metadata != nil {
		c.Metadata = *r.Metadata
	}
	return c
}

// world is the state the bench sets up: the CRM rows, the Sinch project and
// the links an earlier run left, generated row by row so that a million of
// them never need to be held at once by the driver.
type world struct {
	n    int
	opts planner.Options
}

// seeded calls fn with every contact of the Sinch project, in id order, and
// with the link an earlier run stored for it (zero when none).
func (w world) contacts(fn func(c sinch.Contact, link planner.Link)) {
	j := 0
	emit := func(c sinch.Contact, link planner.Link) {
		c.ID = contactID(j)
		j++
		if link.ExternalID != "" {
			link.ContactID = c.ID
		}
		fn(c, link)
	}
	for i := range w.n {
		r := record(i)
		m := mirror(i, r)
		link := planner.Link{ExternalID: r.ExternalID, ContentHash: "stale"}
		if want, rej := planner.Normalize(r, w.opts); rej == nil {
			link.ContentHash = want.Hash
		}
		switch kindOf(i) {
		case kindInSync:
			emit(m, link)
		case kindChanged:
			m.DisplayName = "Old Name " + strconv.Itoa(i)
			m.Email = "old" + strconv.Itoa(i) + "@example.org"
			link.ContentHash = "stale"
			emit(m, link)
		case kindDuplicate:
			emit(m, link)
			dup := m
			dup.ChannelIdentities = m.ChannelIdentities[:1]
			emit(dup, planner.Link{})
		case kindAdopt:
			emit(sinch.Contact{
				ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: m.ChannelIdentities[0].Identity}},
				DisplayName:       "Unknown", Language: "UNSPECIFIED",
			}, planner.Link{})
		case kindTombstone:
			emit(m, link)
		}
		if i%100 == 99 {
			// Once per hundred rows: an orphan and a stranger.
			k := i / 100
			gone := fmt.Sprintf("crm-gone-%08d", k)
			emit(sinch.Contact{
				ExternalID: gone, DisplayName: "Former " + strconv.Itoa(k), Language: "EN_US",
				ChannelIdentities: []sinch.ChannelIdentity{{Channel: "SMS", Identity: "4672" + pad(k, 7)}},
			}, planner.Link{ExternalID: gone, ContentHash: "gone"})
			emit(sinch.Contact{
				ChannelIdentities: []sinch.ChannelIdentity{{Channel: "WHATSAPP", Identity: strangerPhone(k)[1:]}},
				DisplayName:       "Unknown", Language: "UNSPECIFIED",
			}, planner.Link{})
		}
	}
}

// expected counts what a full run over the world must do.
type expected struct {
	contacts int // contacts in the project before the run
	writes   int // operations the plan needs
}

func (w world) expect() expected {
	var e expected
	w.contacts(func(sinch.Contact, planner.Link) { e.contacts++ })
	for i := range w.n {
		switch kindOf(i) {
		case kindChanged, kindMissing, kindDuplicate, kindAdopt, kindTombstone:
			e.writes++
		}
		if i%100 == 99 {
			e.writes++ // the orphan's delete
		}
	}
	return e
}
