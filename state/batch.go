package state

// dedupeLast keeps the last element for each key, in order of first
// appearance. One statement may not upsert the same key twice ("ON CONFLICT
// DO UPDATE command cannot affect row a second time"), and a later value is
// the caller's latest word.
func dedupeLast[T any](s []T, key func(T) string) []T {
	pos := make(map[string]int, len(s))
	out := make([]T, 0, len(s))
	for _, v := range s {
		k := key(v)
		if i, ok := pos[k]; ok {
			out[i] = v
			continue
		}
		pos[k] = len(out)
		out = append(out, v)
	}
	return out
}
