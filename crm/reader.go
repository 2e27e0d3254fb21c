package crm

import (
	"database/sql"

	"go.uber.org/zap"
)

// Reader reads the CRM source over a pool it does not own: the one that
// state.Open opens and closes, shared with syncd's own state. It is safe for
// concurrent use.
type Reader struct {
	db  *sql.DB
	log *zap.Logger
}

// New reads over db, which must be a pgx pool (stdlib.OpenDB): the reads go
// through pgx itself (see scan.go).
func New(db *sql.DB, log *zap.Logger) *Reader {
	if log == nil {
		log = zap.NewNop()
	}
	return &Reader{db: db, log: log}
}
