package crm

import "database/sql"

// Reader reads the CRM source over a pool it does not own: the one
// state.Open opens and closes, which syncd's own state shares. It is safe
// for concurrent use.
type Reader struct {
	db *sql.DB
}

// New reads over db, which must be a pgx pool (stdlib.OpenDB, as state.Open
// makes): the reads go through pgx itself (see scan.go).
func New(db *sql.DB) *Reader { return &Reader{db: db} }
