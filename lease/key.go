package lease

import (
	"fmt"
	"hash/fnv"
)

// Key is an advisory lock key as pg_locks shows it: classid and objid, and
// objsubid 1 for a bigint key or 2 for a pair of int4 keys. Keys are
// comparable, so a set of them is a map.
type Key struct {
	classID, objID uint32
	pair           bool
}

// Named is the bigint key of name: FNV-1a (64-bit) of it. pg_locks shows it
// as classid = key>>32, objid = key&0xffffffff, objsubid = 1. Every syncd
// version must derive the same key from a name, or two of them could hold
// "the same" lock at once.
func Named(name string) Key {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return Int64(int64(h.Sum64()))
}

// Int64 is the bigint key k.
func Int64(k int64) Key {
	u := uint64(k)
	return Key{classID: uint32(u >> 32), objID: uint32(u)}
}

// Pair is the key of two int4 keys (pg_locks: classid = space, objid = id,
// objsubid = 2), which keep a space of their own apart from every bigint
// key.
func Pair(space, id int32) Key {
	return Key{classID: uint32(space), objID: uint32(id), pair: true}
}

// Space is a first key for Pair drawn from name: FNV-1a (32-bit) of it,
// kept positive.
func Space(name string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int32(h.Sum32() & 0x7fffffff)
}

// Int64 is the bigint form of a key made by Named or Int64, as
// pg_advisory_lock(bigint) takes it; a Pair has none and gives 0.
func (k Key) Int64() int64 {
	if k.pair {
		return 0
	}
	return int64(uint64(k.classID)<<32 | uint64(k.objID))
}

func (k Key) String() string {
	if k.pair {
		return fmt.Sprintf("(%d, %d)", int32(k.classID), int32(k.objID))
	}
	return fmt.Sprint(k.Int64())
}

// subID is the key's objsubid in pg_locks.
func (k Key) subID() int {
	if k.pair {
		return 2
	}
	return 1
}

// call is the advisory lock function fn (pg_try_advisory_lock, ...) applied
// to the key, with its arguments.
func (k Key) call(fn string) (string, []any) {
	if k.pair {
		return "SELECT " + fn + "($1::int4, $2::int4)", []any{int32(k.classID), int32(k.objID)}
	}
	return "SELECT " + fn + "($1::int8)", []any{k.Int64()}
}

// keyOf is the key pg_locks shows as classid, objid and objsubid.
func keyOf(classID, objID int64, subID int) Key {
	return Key{classID: uint32(classID), objID: uint32(objID), pair: subID == 2}
}

// Where is an SQL condition on pg_locks (aliased l) that holds for the
// key's rows, with the three parameters it takes from the first given:
// classid, objid and objsubid.
func (k Key) Where(first int) (string, []any) {
	return fmt.Sprintf("l.locktype = 'advisory' AND l.classid = $%d::int8::oid AND l.objid = $%d::int8::oid AND l.objsubid = $%d",
		first, first+1, first+2), []any{int64(k.classID), int64(k.objID), k.subID()}
}
