package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBatchSize is used when a caller passes a batch size of zero or less.
const DefaultBatchSize = 1000

// RowError reports a source row whose values cannot be represented as a
// Record (a NULL updated_at, a channel_priority that is not a one-dimensional
// array of text). The stream goes on after it: one bad row must not stop a
// run. A caller that drops the row must not treat its external_id as vanished
// from the CRM, or the bad row would delete its Sinch contact.
type RowError struct {
	ExternalID string
	Column     string
	Err        error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("crm: source row external_id=%q: column %s: %v", e.ExternalID, e.Column, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Every column is cast to the contract's type so that a view with varchar,
// citext or uuid columns, or jsonb metadata, reads the same as the reference
// table; on the reference table the casts are no-ops and indexes still apply.
// channel_priority comes as JSON because database/sql cannot scan text[] and
// JSON keeps NULL ('null') apart from '{}' ('[]').
const recordColumns = `external_id::text, display_name::text, email::text, phone::text,
	channel_identities::text, to_jsonb(channel_priority)::text, language::text,
	metadata::text, updated_at::timestamptz, deleted_at::timestamptz`

// Source is where the CRM records are: a relation (crm.source) and, when
// several projects read one, which of its rows are this one's
// (crm.filter). Every read of the source goes through from, so that a full
// read, an incremental one, the vanished links and a look-up by id all see
// the same rows.
type Source struct {
	// Relation is a table or view, optionally schema-qualified, read the way
	// PostgreSQL reads names and quoted whole, so nothing in it reaches the
	// SQL as code.
	Relation string
	// Filter is an SQL boolean expression over the relation's columns
	// (region = 'eu'); empty, every row is a record. It is SQL, written by
	// whoever writes the configuration, and is run as such.
	Filter string
}

// String names the source in messages.
func (s Source) String() string {
	if strings.TrimSpace(s.Filter) == "" {
		return s.Relation
	}
	return s.Relation + " WHERE " + s.Filter
}

// FromItem is the source as a FROM item named src: the relation, or the
// rows of it the filter keeps, for a query that reads the source beside
// syncd's own tables (state.Store.VanishedLinks). The filter is
// parenthesised apart, on a line of its own so that a trailing -- comment
// cannot swallow the parenthesis.
func (s Source) FromItem() (string, error) {
	rel, err := quoteRelation(s.Relation)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s.Filter) == "" {
		return rel + " AS src", nil
	}
	return "(SELECT * FROM " + rel + " WHERE (\n" + s.Filter + "\n)) AS src", nil
}

// Records streams every row of the source in batches ordered by
// external_id, all read in one REPEATABLE READ transaction: one moment of
// the CRM, so that a record renamed while the scan goes on is seen under
// one name, not under neither or both. Each batch is keyed on the last
// external_id seen, so the scan costs the same at the millionth row as at
// the first; the transaction (and with it the server's vacuum horizon) is
// held for as long as the scan takes, which docs/benchmarks.md measures.
// Rows with a NULL external_id are not records and are skipped. external_id
// must be unique, as the contract says: of two rows sharing one across a
// page boundary, the second would not be returned.
//
// A row that cannot be represented yields a *RowError and the stream goes on;
// any other error ends it.
func (s *Reader) Records(ctx context.Context, source Source, batchSize int) iter.Seq2[[]Record, error] {
	rel, err := source.FromItem()
	batchSize = normBatch(batchSize)
	first := `SELECT ` + recordColumns + ` FROM ` + rel + `
		WHERE external_id IS NOT NULL
		ORDER BY external_id::text LIMIT $1`
	next := `SELECT ` + recordColumns + ` FROM ` + rel + `
		WHERE external_id::text > $1
		ORDER BY external_id::text LIMIT $2`
	return s.keysetStream(ctx, "read "+source.String(), err, true, first, []any{batchSize}, next,
		func(b *batch) []any { return []any{b.lastID, batchSize} }, batchSize)
}

// ChangedSince streams the rows whose updated_at is at or after since, in
// batches ordered by (updated_at, external_id) and keyed on the last pair
// seen. The bound is inclusive so a row sharing the watermark's timestamp is
// never lost; re-reading it costs no write downstream.
//
// updated_at is set when a transaction writes, not when it commits: a row can
// become visible with a timestamp older than a watermark taken meanwhile. A
// watermark should therefore trail the time a read started by the longest
// expected CRM transaction, rather than be the newest updated_at seen.
func (s *Reader) ChangedSince(ctx context.Context, source Source, since time.Time, batchSize int) iter.Seq2[[]Record, error] {
	rel, err := source.FromItem()
	batchSize = normBatch(batchSize)
	first := `SELECT ` + recordColumns + ` FROM ` + rel + `
		WHERE updated_at::timestamptz >= $1 AND external_id IS NOT NULL
		ORDER BY updated_at::timestamptz, external_id::text LIMIT $2`
	next := `SELECT ` + recordColumns + ` FROM ` + rel + `
		WHERE (updated_at::timestamptz, external_id::text) > ($1, $2)
		ORDER BY updated_at::timestamptz, external_id::text LIMIT $3`
	return s.keysetStream(ctx, "read changes from "+source.String(), err, false, first, []any{since, batchSize}, next,
		func(b *batch) []any { return []any{b.lastAt, b.lastID, batchSize} }, batchSize)
}

// keysetStream runs the first page query, then the next one keyed on the last
// row of each page, until a page comes back short. With snapshot set the
// pages are read in one REPEATABLE READ, read-only transaction, so that
// together they are one moment of the source; otherwise each is a query of
// its own. setupErr, if any, is the stream's only item.
func (s *Reader) keysetStream(ctx context.Context, what string, setupErr error, snapshot bool, first string, firstArgs []any,
	next string, nextArgs func(*batch) []any, batchSize int) iter.Seq2[[]Record, error] {
	return func(yield func([]Record, error) bool) {
		if setupErr != nil {
			yield(nil, setupErr)
			return
		}
		pages := func(q querier) error {
			query, args := first, firstArgs
			for {
				b, err := queryBatch(ctx, q, batchSize, query, args...)
				if err != nil {
					return err
				}
				if !b.emit(yield) || b.n < batchSize {
					return nil
				}
				query, args = next, nextArgs(&b)
			}
		}
		var err error
		if snapshot {
			err = s.inSnapshot(ctx, pages)
		} else {
			err = s.withConn(ctx, func(c *pgx.Conn) error { return pages(c) })
		}
		if err != nil {
			yield(nil, fmt.Errorf("crm: %s: %w", what, err))
		}
	}
}

// RecordsByExternalID reads the given records in one query, ordered by
// external_id; ids with no row are simply absent. Rows that cannot be
// represented are left out and reported together in the error (each a
// *RowError), alongside the records that could be read.
func (s *Reader) RecordsByExternalID(ctx context.Context, source Source, ids []string) ([]Record, error) {
	rel, err := source.FromItem()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	var b batch
	err = s.withConn(ctx, func(c *pgx.Conn) error {
		var err error
		b, err = queryBatch(ctx, c, len(ids), `SELECT `+recordColumns+` FROM `+rel+`
			WHERE external_id::text = ANY($1)
			ORDER BY external_id::text`, ids)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("crm: read %s by external_id: %w", source.String(), err)
	}
	return b.recs, errors.Join(b.rowErrs...)
}

func normBatch(n int) int {
	if n <= 0 {
		return DefaultBatchSize
	}
	return n
}

type batch struct {
	recs    []Record
	rowErrs []error
	n       int // rows read, good or bad: what the keyset has moved past
	lastID  string
	lastAt  time.Time
}

func (b *batch) emit(yield func([]Record, error) bool) bool {
	if len(b.recs) > 0 && !yield(b.recs, nil) {
		return false
	}
	for _, e := range b.rowErrs {
		if !yield(nil, e) {
			return false
		}
	}
	return true
}

// decodeTextArray turns to_jsonb(text[]) back into a slice. '{}' gives an
// empty, non-nil slice: it means "clear it", unlike NULL. A NULL element has
// no meaning for Sinch and is refused rather than read as "".
func decodeTextArray(js []byte) ([]string, error) {
	var elems []*string
	if err := json.Unmarshal(js, &elems); err != nil {
		return nil, fmt.Errorf("want a one-dimensional text array, got %s", truncate(string(js), 64))
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if e == nil {
			return nil, fmt.Errorf("element %d is NULL", i+1)
		}
		out[i] = *e
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// quoteRelation reads name as PostgreSQL would (optionally schema-qualified,
// unquoted parts folded to lower case, "quoted" parts verbatim) and returns
// it with every part quoted, so nothing in the name can reach the SQL as code.
func quoteRelation(name string) (string, error) {
	parts, err := splitIdent(name)
	if err != nil {
		return "", fmt.Errorf("crm: invalid relation name %q: %w", name, err)
	}
	if len(parts) > 2 {
		return "", fmt.Errorf("crm: invalid relation name %q: want [schema.]relation", name)
	}
	quoted := make([]string, len(parts))
	for i, p := range parts {
		quoted[i] = quoteIdent(p)
	}
	return strings.Join(quoted, "."), nil
}

func splitIdent(name string) ([]string, error) {
	var parts []string
	s := name
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		var part string
		if strings.HasPrefix(s, `"`) {
			var sb strings.Builder
			i := 1
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return nil, errors.New("unterminated quoted identifier")
				}
				sb.WriteString(s[i : i+j])
				i += j + 1
				if i < len(s) && s[i] == '"' { // "" is an escaped quote
					sb.WriteByte('"')
					i++
					continue
				}
				break
			}
			part, s = sb.String(), s[i:]
			if part == "" {
				return nil, errors.New("zero-length quoted identifier")
			}
		} else {
			end := strings.IndexAny(s, `."`)
			if end < 0 {
				end = len(s)
			}
			part = strings.TrimRight(s[:end], " \t\n\r")
			s = s[end:]
			if part == "" {
				return nil, errors.New("empty name part")
			}
			if strings.ContainsAny(part, " \t\n\r") {
				return nil, errors.New("unquoted name contains whitespace")
			}
			part = asciiLower(part)
		}
		if strings.ContainsRune(part, 0) {
			return nil, errors.New("name contains a NUL byte")
		}
		parts = append(parts, part)
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return parts, nil
		}
		if s[0] != '.' {
			return nil, fmt.Errorf("unexpected %q", s)
		}
		s = s[1:]
	}
}

// asciiLower folds like PostgreSQL does for unquoted identifiers in UTF-8
// databases: ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
