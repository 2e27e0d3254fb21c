package crm

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// querier is a pgx connection or a transaction on one.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryBatch runs a query over recordColumns and reads all its rows. It
// reads them through pgx itself rather than database/sql, which converts
// every column twice and allocates twice per column: here one allocation
// holds all the text of a row and one its nullable fields, which is what
// keeps the reader within sight of COPY.
func queryBatch(ctx context.Context, q querier, sizeHint int, query string, args ...any) (batch, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return batch{}, err
	}
	return scanRows(rows, sizeHint)
}

// withConn runs fn on a pgx connection of the pool.
func (s *Reader) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNotPgx
		}
		return fn(sc.Conn())
	})
}

// inSnapshot runs fn in one REPEATABLE READ, read-only transaction: every
// query fn makes sees the database as of the transaction's first one.
func (s *Reader) inSnapshot(ctx context.Context, fn func(querier) error) error {
	return s.withConn(ctx, func(c *pgx.Conn) error {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		return tx.Commit(ctx)
	})
}

var errNotPgx = errors.New("crm: the connection is not a pgx connection")

// Columns of recordColumns, by position.
const (
	colExternalID = iota
	colDisplayName
	colEmail
	colPhone
	colChannelIdentities
	colChannelPriority
	colLanguage
	colMetadata
	colUpdatedAt
	colDeletedAt
	recordColumnCount
)

// textColumns are the columns read as strings, in the order of their
// place in a row's text.
var textColumns = [...]int{colExternalID, colDisplayName, colEmail, colPhone, colLanguage, colMetadata}

// scanRows reads all rows and closes them before anything is yielded, so no
// connection stays busy while the caller works on the batch.
func scanRows(rows pgx.Rows, sizeHint int) (batch, error) {
	defer rows.Close()
	// The batch is sized on its first row: a query that finds nothing (most
	// of a full run's checks for rows changed under it) allocates nothing.
	var b batch
	fds := rows.FieldDescriptions()
	if len(fds) != recordColumnCount {
		return b, fmt.Errorf("want %d columns, got %d", recordColumnCount, len(fds))
	}
	for _, c := range textColumns {
		if fds[c].DataTypeOID != pgtype.TextOID {
			return b, fmt.Errorf("column %s: want text, got type %d", fds[c].Name, fds[c].DataTypeOID)
		}
	}
	for _, c := range []int{colChannelIdentities, colChannelPriority} {
		if fds[c].DataTypeOID != pgtype.TextOID {
			return b, fmt.Errorf("column %s: want text, got type %d", fds[c].Name, fds[c].DataTypeOID)
		}
	}
	tm := rows.Conn().TypeMap()
	scanTime := func(c int, raw []byte) (time.Time, error) {
		var t time.Time
		err := tm.Scan(fds[c].DataTypeOID, fds[c].Format, raw, &t)
		return t, err
	}
	for rows.Next() {
		if b.recs == nil {
			b.recs = make([]Record, 0, min(sizeHint, 4096))
		}
		vals := rows.RawValues()
		// Text and binary formats of text are the same bytes: the row's
		// text is copied once, and its fields are slices of that copy.
		size := 0
		for _, c := range textColumns {
			size += len(vals[c])
		}
		var text string
		if size > 0 {
			buf := make([]byte, 0, size)
			for _, c := range textColumns {
				buf = append(buf, vals[c]...)
			}
			text = unsafe.String(&buf[0], size)
		}
		var (
			r     Record
			box   *[5]string // the nullable text fields point here
			at    int
			field = func(c, slot int) *string {
				v := vals[c]
				s := text[at : at+len(v)]
				at += len(v)
				if v == nil {
					return nil
				}
				if box == nil {
					box = new([5]string)
				}
				box[slot] = s
				return &box[slot]
			}
		)
		if vals[colExternalID] == nil {
			return b, fmt.Errorf("scan row after external_id=%q: external_id is NULL", b.lastID)
		}
		r.ExternalID = text[:len(vals[colExternalID])]
		at = len(r.ExternalID)
		r.DisplayName = field(colDisplayName, 0)
		r.Email = field(colEmail, 1)
		r.Phone = field(colPhone, 2)
		r.Language = field(colLanguage, 3)
		r.Metadata = field(colMetadata, 4)
		if v := vals[colChannelIdentities]; v != nil {
			r.ChannelIdentities = bytes.Clone(v)
			if r.ChannelIdentities == nil {
				r.ChannelIdentities = []byte{}
			}
		}
		var updatedAt sql.NullTime
		if v := vals[colUpdatedAt]; v != nil {
			t, err := scanTime(colUpdatedAt, v)
			if err != nil {
				return b, fmt.Errorf("scan row external_id=%q: %w", r.ExternalID, err)
			}
			updatedAt = sql.NullTime{Time: t, Valid: true}
		}
		if v := vals[colDeletedAt]; v != nil {
			t, err := scanTime(colDeletedAt, v)
			if err != nil {
				return b, fmt.Errorf("scan row external_id=%q: %w", r.ExternalID, err)
			}
			r.DeletedAt = &t
		}
		b.n++
		b.lastID, b.lastAt = r.ExternalID, updatedAt.Time
		if !updatedAt.Valid {
			b.rowErrs = append(b.rowErrs, &RowError{ExternalID: r.ExternalID, Column: "updated_at",
				Err: errors.New("NULL, but the contract requires a timestamp")})
			continue
		}
		r.UpdatedAt = updatedAt.Time
		if v := vals[colChannelPriority]; v != nil {
			cp, err := decodeTextArray(v)
			if err != nil {
				b.rowErrs = append(b.rowErrs, &RowError{ExternalID: r.ExternalID, Column: "channel_priority", Err: err})
				continue
			}
			r.ChannelPriority = cp
		}
		b.recs = append(b.recs, r)
	}
	return b, rows.Err()
}
