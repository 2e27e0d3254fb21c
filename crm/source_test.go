package crm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/planner"
)

func TestRecordsStreamsEveryRowOnceInOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rows, batch int
		want        []int
	}{
		{rows: 0, batch: 1000, want: nil},
		{rows: 1, batch: 1000, want: []int{1}},
		{rows: 1000, batch: 1000, want: []int{1000}}, // an exact multiple ends on an empty page, not an empty batch
		{rows: 2345, batch: 1000, want: []int{1000, 1000, 345}},
		{rows: 25, batch: 0, want: []int{25}}, // 0 means DefaultBatchSize
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d rows by %d", tc.rows, tc.batch), func(t *testing.T) {
			t.Parallel()
			s := newSource(t)
			want := seedRecords(t, s, tc.rows)
			recs, batches := collect(t, s.Records(ctxFor(t), crm.Source{Relation: contacts}, tc.batch))
			if !slices.Equal(batches, tc.want) {
				t.Errorf("batch sizes = %v, want %v", batches, tc.want)
			}
			if got := ids(recs); !slices.Equal(got, want) {
				t.Errorf("got %d ids, want %d, each once in external_id order", len(got), len(want))
			}
		})
	}
}

// Rows deleted behind the cursor must not shift the rest of the scan: an
// OFFSET page would skip as many rows as were deleted.
func TestRecordsKeysetSurvivesDeletesBehindTheCursor(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	all := seedRecords(t, s, 2345)
	var got []string
	first := true
	for batch, err := range s.Records(ctxFor(t), crm.Source{Relation: contacts}, 1000) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(batch)...)
		if first {
			first = false
			mustExec(t, s, `DELETE FROM crm_contacts WHERE external_id < 'c-00100'`)
		}
	}
	if !slices.Equal(got, all) {
		t.Fatalf("got %d ids, want all %d once: a delete behind the cursor moved the scan", len(got), len(all))
	}
}

// A full read is one moment of the source: renames committed while it goes
// on (one row from a key the scan has not reached to one it has passed, one
// the other way round) are not seen at all, where page by page the first
// would be read under neither name and the second under both.
func TestRecordsReadOneMoment(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	all := seedRecords(t, s, 2345)
	var got []string
	first := true
	for batch, err := range s.Records(ctxFor(t), crm.Source{Relation: contacts}, 1000) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(batch)...)
		if first {
			first = false
			mustExec(t, s, `UPDATE crm_contacts SET external_id = 'c-00000-high' WHERE external_id = 'c-02000'`)
			mustExec(t, s, `UPDATE crm_contacts SET external_id = 'c-zzzz' WHERE external_id = 'c-00010'`)
			mustExec(t, s, `UPDATE crm_contacts SET external_id = 'c-00000-low' WHERE external_id = 'c-02001'`)
		}
	}
	if !slices.Equal(got, all) {
		t.Errorf("read %d ids, want the %d of the moment the read began, each once", len(got), len(all))
	}
}

func TestRecordsStopsWhenTheConsumerDoes(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	seedRecords(t, s, 30)
	n := 0
	for range s.Records(ctxFor(t), crm.Source{Relation: contacts}, 10) {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("got %d batches after break, want 1", n)
	}
	// The pool must still work: nothing was left holding a connection.
	if _, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: contacts}, []string{"c-00001"}); err != nil {
		t.Fatal(err)
	}
}

// NULL means "no opinion" and an empty value means "clear it" (SPEC §2), so
// every nullable column has to come back exactly as stored.
func TestNullAndEmptyAreDistinct(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	deleted := at.Add(time.Hour)
	recs := []crm.Record{
		{ExternalID: "null", UpdatedAt: at},
		{
			ExternalID: "empty", DisplayName: ptr(""), Email: ptr(""), Phone: ptr(""),
			ChannelIdentities: []byte(`[]`), ChannelPriority: []string{}, Language: ptr(""), Metadata: ptr(""),
			UpdatedAt: at,
		},
		{
			ExternalID: "full", DisplayName: ptr("Ada"), Email: ptr("ada@example.com"), Phone: ptr("+46700000001"),
			ChannelIdentities: []byte(`[{"channel": "MESSENGER", "identity": "123", "app_id": "app"}]`),
			ChannelPriority:   []string{"WHATSAPP", "SMS"}, Language: ptr("EN_US"), Metadata: ptr(`{"tier":"gold"}`),
			UpdatedAt: at, DeletedAt: &deleted,
		},
	}
	if err := s.UpsertRecords(ctxFor(t), contacts, recs); err != nil {
		t.Fatal(err)
	}
	streamed, _ := collect(t, s.Records(ctxFor(t), crm.Source{Relation: contacts}, 2))
	byID, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: contacts}, []string{"null", "empty", "full"})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]crm.Record{"Records": streamed, "RecordsByExternalID": byID} {
		t.Run(name, func(t *testing.T) {
			index := map[string]crm.Record{}
			for _, r := range got {
				index[r.ExternalID] = r
			}
			for _, want := range recs {
				checkRecord(t, index[want.ExternalID], want)
			}
		})
	}
}

func checkRecord(t *testing.T, got, want crm.Record) {
	t.Helper()
	strs := []struct {
		col       string
		got, want *string
	}{
		{"display_name", got.DisplayName, want.DisplayName},
		{"email", got.Email, want.Email},
		{"phone", got.Phone, want.Phone},
		{"language", got.Language, want.Language},
		{"metadata", got.Metadata, want.Metadata},
	}
	for _, c := range strs {
		if (c.got == nil) != (c.want == nil) || (c.got != nil && *c.got != *c.want) {
			t.Errorf("%s %s = %s, want %s", want.ExternalID, c.col, show(c.got), show(c.want))
		}
	}
	if (got.ChannelPriority == nil) != (want.ChannelPriority == nil) || !slices.Equal(got.ChannelPriority, want.ChannelPriority) {
		t.Errorf("%s channel_priority = %#v, want %#v", want.ExternalID, got.ChannelPriority, want.ChannelPriority)
	}
	if (got.ChannelIdentities == nil) != (want.ChannelIdentities == nil) || !sameJSON(got.ChannelIdentities, want.ChannelIdentities) {
		t.Errorf("%s channel_identities = %q, want %q", want.ExternalID, got.ChannelIdentities, want.ChannelIdentities)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s updated_at = %v, want %v", want.ExternalID, got.UpdatedAt, want.UpdatedAt)
	}
	if (got.DeletedAt == nil) != (want.DeletedAt == nil) || (got.DeletedAt != nil && !got.DeletedAt.Equal(*want.DeletedAt)) {
		t.Errorf("%s deleted_at = %v, want %v", want.ExternalID, got.DeletedAt, want.DeletedAt)
	}
	if got.Deleted() != want.Deleted() {
		t.Errorf("%s Deleted() = %v", want.ExternalID, got.Deleted())
	}
}

func show(p *string) string {
	if p == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *p)
}

func sameJSON(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}

// A user with a CRM of their own maps it onto the contract with a view; the
// names, column types and metadata-as-jsonb are theirs, not ours.
func TestUserViewAsSource(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	mustExec(t, s, `CREATE SCHEMA "Sales CRM"`)
	mustExec(t, s, `CREATE TABLE "Sales CRM".people (
		person_no   bigint PRIMARY KEY,
		full_name   varchar(200),
		mail        varchar(320),
		mobile      varchar(20),
		handles     jsonb,
		prefer      text[],
		locale      varchar(10),
		extra       jsonb,
		modified_at timestamptz NOT NULL,
		archived_at timestamptz)`)
	mustExec(t, s, `CREATE VIEW "Sales CRM"."Contacts ""v1""" AS
		SELECT person_no AS external_id, full_name AS display_name, mail AS email, mobile AS phone,
			handles AS channel_identities, prefer AS channel_priority, locale AS language,
			extra AS metadata, modified_at AS updated_at, archived_at AS deleted_at
		FROM "Sales CRM".people`)
	mustExec(t, s, `INSERT INTO "Sales CRM".people VALUES
		(9,  'Nine', NULL, '+46700000009', NULL, '{}', 'SV_SE', '{"b": [1, 2], "a": "x"}', '2025-01-01Z', NULL),
		(10, 'Ten',  'ten@example.com', NULL, '[]', NULL, NULL, NULL, '2025-01-02Z', NULL),
		(11, NULL,   NULL, NULL, NULL, NULL, NULL, 'null', '2025-01-03Z', '2025-02-01Z'),
		(12, '',     NULL, NULL, NULL, NULL, NULL, '""', '2025-01-04Z', NULL)`)

	const view = `"Sales CRM"."Contacts ""v1"""`
	recs, _ := collect(t, s.Records(ctxFor(t), crm.Source{Relation: view}, 2))
	// external_id is text by contract, so a numeric key sorts as text.
	if got, want := ids(recs), []string{"10", "11", "12", "9"}; !slices.Equal(got, want) {
		t.Fatalf("ids = %v, want %v", got, want)
	}
	byID := map[string]crm.Record{}
	for _, r := range recs {
		byID[r.ExternalID] = r
	}
	tests := []struct {
		id       string
		metadata *string
	}{
		{"9", ptr(`{"a": "x", "b": [1, 2]}`)}, // jsonb rendered as text, as PostgreSQL normalises it
		{"10", nil},
		{"11", ptr("null")}, // JSON null is a value, not SQL NULL
		{"12", ptr(`""`)},
	}
	for _, tc := range tests {
		if got := byID[tc.id].Metadata; show(got) != show(tc.metadata) {
			t.Errorf("%s metadata = %s, want %s", tc.id, show(got), show(tc.metadata))
		}
	}
	if cp := byID["9"].ChannelPriority; cp == nil || len(cp) != 0 {
		t.Errorf("9 channel_priority = %#v, want empty non-nil", cp)
	}
	if cp := byID["10"].ChannelPriority; cp != nil {
		t.Errorf("10 channel_priority = %#v, want nil", cp)
	}
	if !byID["11"].Deleted() {
		t.Errorf("11 should be a tombstone")
	}

	changed, _ := collect(t, s.ChangedSince(ctxFor(t), crm.Source{Relation: view}, time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC), 1))
	if got, want := ids(changed), []string{"11", "12"}; !slices.Equal(got, want) {
		t.Errorf("ChangedSince ids = %v, want %v", got, want)
	}
	one, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: view}, []string{"12", "404"})
	if err != nil || len(one) != 1 || one[0].DisplayName == nil || *one[0].DisplayName != "" {
		t.Errorf("RecordsByExternalID = %+v, %v; want record 12 with empty display_name", one, err)
	}
}

func TestRecordsByExternalID(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	seedRecords(t, s, 50)
	tests := []struct {
		name string
		ids  []string
		want []string
	}{
		{"none asked", nil, nil},
		{"one", []string{"c-00007"}, []string{"c-00007"}},
		{"ordered, missing left out, repeats once", []string{"c-00042", "nope", "c-00003", "c-00042"}, []string{"c-00003", "c-00042"}},
		{"only missing", []string{"x", "y"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: contacts}, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("ids = %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestChangedSince(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var recs []crm.Record
	// Many rows share a timestamp so that pages end in the middle of a tie:
	// only the (updated_at, external_id) keyset gets those right.
	for i := range 40 {
		recs = append(recs, crm.Record{ExternalID: fmt.Sprintf("r%02d", 39-i), UpdatedAt: base.Add(time.Duration(i/10) * time.Minute)})
	}
	if err := s.UpsertRecords(ctxFor(t), contacts, recs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		since time.Time
		batch int
		want  int
	}{
		{"everything", time.Time{}, 7, 40},
		{"inclusive bound", base.Add(2 * time.Minute), 3, 20},
		{"between stamps", base.Add(2*time.Minute + time.Microsecond), 3, 10},
		{"sub-microsecond since is not rounded up", base.Add(3*time.Minute - time.Nanosecond), 4, 10},
		{"nothing newer", base.Add(time.Hour), 5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := collect(t, s.ChangedSince(ctxFor(t), crm.Source{Relation: contacts}, tc.since, tc.batch))
			if len(got) != tc.want {
				t.Fatalf("got %d rows, want %d", len(got), tc.want)
			}
			seen := map[string]bool{}
			for i, r := range got {
				if seen[r.ExternalID] {
					t.Fatalf("%s returned twice", r.ExternalID)
				}
				seen[r.ExternalID] = true
				if r.UpdatedAt.Before(tc.since) {
					t.Errorf("%s updated_at %v is before %v", r.ExternalID, r.UpdatedAt, tc.since)
				}
				if i > 0 {
					p := got[i-1]
					if r.UpdatedAt.Before(p.UpdatedAt) || (r.UpdatedAt.Equal(p.UpdatedAt) && r.ExternalID <= p.ExternalID) {
						t.Errorf("out of (updated_at, external_id) order at %d: %s after %s", i, r.ExternalID, p.ExternalID)
					}
				}
			}
		})
	}
}

// One unrepresentable row is reported with its id and does not end the
// stream: the rest of the run goes on.
func TestUnrepresentableRowsAreReportedByID(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	mustExec(t, s, `CREATE TABLE odd (external_id text, channel_priority text[], updated_at timestamptz)`)
	mustExec(t, s, `INSERT INTO odd VALUES
		('a', '{SMS}', now()),
		('b', '{{SMS,RCS},{MMS,VIBER}}', now()),
		('c', '{SMS,NULL}', now()),
		('d', NULL, NULL),
		('e', NULL, now()),
		(NULL, NULL, now())`)
	mustExec(t, s, `CREATE VIEW odd_contacts AS SELECT external_id, NULL::text AS display_name, NULL::text AS email,
		NULL::text AS phone, NULL::jsonb AS channel_identities, channel_priority, NULL::text AS language,
		NULL::text AS metadata, updated_at, NULL::timestamptz AS deleted_at FROM odd`)

	var good []string
	bad := map[string]string{}
	for batch, err := range s.Records(ctxFor(t), crm.Source{Relation: "odd_contacts"}, 2) {
		var rowErr *crm.RowError
		switch {
		case errors.As(err, &rowErr):
			bad[rowErr.ExternalID] = rowErr.Column
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", rowErr.ExternalID)) {
				t.Errorf("error %q does not name external_id %q", err, rowErr.ExternalID)
			}
		case err != nil:
			t.Fatalf("stream ended: %v", err)
		}
		good = append(good, ids(batch)...)
	}
	if want := []string{"a", "e"}; !slices.Equal(good, want) {
		t.Errorf("good rows = %v, want %v", good, want)
	}
	wantBad := map[string]string{"b": "channel_priority", "c": "channel_priority", "d": "updated_at"}
	if fmt.Sprint(bad) != fmt.Sprint(wantBad) {
		t.Errorf("row errors = %v, want %v", bad, wantBad)
	}

	recs, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: "odd_contacts"}, []string{"a", "b", "d"})
	var rowErr *crm.RowError
	if !errors.As(err, &rowErr) || len(recs) != 1 || recs[0].ExternalID != "a" {
		t.Errorf("RecordsByExternalID = %v, %v; want record a and row errors", ids(recs), err)
	}
}

func TestSourceNamesCannotInjectSQL(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	seedRecords(t, s, 3)
	tests := []struct {
		source  string
		wantErr bool
	}{
		{"crm_contacts", false},
		{"PUBLIC.CRM_CONTACTS", false}, // unquoted names fold to lower case, as in SQL
		{` "public" . "crm_contacts" `, false},
		{"crm_contacts; DROP TABLE crm_contacts", true},
		{`crm_contacts"; DROP TABLE crm_contacts; --`, true},
		{`"crm_contacts; DROP TABLE crm_contacts"`, true}, // one quoted name, which does not exist
		{"db.public.crm_contacts", true},
		{"", true},
		{`""`, true},
		{"public.", true},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			var err error
			for _, e := range s.Records(ctxFor(t), crm.Source{Relation: tc.source}, 10) {
				if e != nil {
					err = e
				}
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
	if got, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: contacts}, []string{"c-00001"}); err != nil || len(got) != 1 {
		t.Fatalf("crm_contacts damaged: %v %v", got, err)
	}
}

func TestUpsertRecordsLeavesUnchangedRowsAlone(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := crm.Record{ExternalID: "x", Email: ptr("a@example.com"), UpdatedAt: at}
	tests := []struct {
		name    string
		rec     crm.Record
		touched bool
	}{
		{"insert", rec, true},
		{"same content, no stamp", crm.Record{ExternalID: "x", Email: ptr("a@example.com")}, false},
		{"same content and stamp", rec, false},
		{"new stamp only", crm.Record{ExternalID: "x", Email: ptr("a@example.com"), UpdatedAt: at.Add(time.Hour)}, true},
		{"changed content, no stamp", crm.Record{ExternalID: "x", Email: ptr("b@example.com")}, true},
	}
	var last time.Time
	for _, tc := range tests {
		if err := s.UpsertRecords(ctxFor(t), contacts, []crm.Record{tc.rec}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: contacts}, []string{"x"})
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v %v", tc.name, got, err)
		}
		if touched := !got[0].UpdatedAt.Equal(last); touched != tc.touched {
			t.Errorf("%s: updated_at %v -> %v, touched = %v, want %v", tc.name, last, got[0].UpdatedAt, touched, tc.touched)
		}
		last = got[0].UpdatedAt
	}
}

// The contract allows metadata as jsonb; seeding such a table must store the
// JSON itself, not a JSON string that contains it.
func TestUpsertRecordsIntoJSONBMetadata(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	mustExec(t, s, `CREATE TABLE crm_jsonb (LIKE crm_contacts INCLUDING ALL)`)
	mustExec(t, s, `ALTER TABLE crm_jsonb ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb`)
	recs := []crm.Record{
		{ExternalID: "obj", Metadata: ptr(`{"tier": "gold"}`)},
		{ExternalID: "null-json", Metadata: ptr(`null`)},
		{ExternalID: "sql-null"},
	}
	if err := s.UpsertRecords(ctxFor(t), "crm_jsonb", recs); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	if err := s.DB().WithContext(ctxFor(t)).Raw(`SELECT COALESCE(jsonb_typeof(metadata), 'SQL NULL') FROM crm_jsonb ORDER BY external_id`).
		Scan(&kinds).Error; err != nil {
		t.Fatal(err)
	}
	if want := []string{"null", "object", "SQL NULL"}; !slices.Equal(kinds, want) {
		t.Fatalf("stored metadata kinds %v, want %v", kinds, want)
	}
	got, err := s.RecordsByExternalID(ctxFor(t), crm.Source{Relation: "crm_jsonb"}, []string{"obj"})
	if err != nil || len(got) != 1 || show(got[0].Metadata) != show(ptr(`{"tier": "gold"}`)) {
		t.Fatalf("read back %+v, %v", got, err)
	}
}

// Two projects reading one table through their filters see their own rows
// in every read, the vanished links included, and a filter that does not
// run is the source check's error.
func TestSourceFilter(t *testing.T) {
	t.Parallel()
	s := newSource(t)
	mustExec(t, s, `ALTER TABLE crm_contacts ADD COLUMN region text`)
	var recs []crm.Record
	for _, id := range []string{"eu-1", "us-1", "eu-2", "us-2", "xx-1"} {
		recs = append(recs, crm.Record{ExternalID: id, DisplayName: ptr(id)})
	}
	if err := s.UpsertRecords(ctxFor(t), contacts, recs); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, `UPDATE crm_contacts SET region = left(external_id, 2) WHERE external_id <> 'xx-1'`)
	eu := crm.Source{Relation: contacts, Filter: "region = 'eu'"}
	us := crm.Source{Relation: contacts, Filter: "region = 'us' -- a trailing comment does not swallow the parenthesis"}

	tests := []struct {
		name string
		read func() []string
		want []string
	}{
		{"full read", func() []string { r, _ := collect(t, s.Records(ctxFor(t), eu, 1)); return ids(r) }, []string{"eu-1", "eu-2"}},
		{"incremental read", func() []string {
			r, _ := collect(t, s.ChangedSince(ctxFor(t), us, time.Time{}, 1))
			return ids(r)
		}, []string{"us-1", "us-2"}},
		{"by external_id", func() []string {
			r, err := s.RecordsByExternalID(ctxFor(t), eu, []string{"eu-1", "us-1", "xx-1"})
			if err != nil {
				t.Fatal(err)
			}
			return ids(r)
		}, []string{"eu-1"}},
		{"unfiltered", func() []string {
			r, _ := collect(t, s.Records(ctxFor(t), crm.Source{Relation: contacts}, 2))
			return ids(r)
		},
			[]string{"eu-1", "eu-2", "us-1", "us-2", "xx-1"}},
		{"vanished links", func() []string {
			// eu-2 leaves the EU filter: to the project eu it is gone.
			mustExec(t, s, `UPDATE crm_contacts SET region = 'us' WHERE external_id = 'eu-2'`)
			var out []string
			vanished, err := s.state.VanishedLinks(ctxFor(t), "eu", eu)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range vanished {
				out = append(out, l.ExternalID)
			}
			return out
		}, []string{"eu-2", "us-1"}},
	}
	links := []planner.Link{{ExternalID: "eu-1", ContactID: "c1"}, {ExternalID: "eu-2", ContactID: "c2"}, {ExternalID: "us-1", ContactID: "c3"}}
	if err := s.state.SaveLinks(ctxFor(t), "eu", links); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests { // in order: the last one changes a row
		if got := tc.read(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	checks := []struct {
		filter string
		want   string // in the error; "" for none
	}{
		{"region = 'eu'", ""},
		{"regio = 'eu'", `the filter regio = 'eu' does not run over public.crm_contacts`},
		{"region", "boolean"},
	}
	for _, tc := range checks {
		sc, err := s.CheckSource(ctxFor(t), crm.Source{Relation: contacts, Filter: tc.filter})
		switch {
		case tc.want == "" && (err != nil || !sc.OK()):
			t.Errorf("check with filter %q: %+v, %v", tc.filter, sc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("check with filter %q: err %v, want one saying %q", tc.filter, err, tc.want)
		}
	}
}
