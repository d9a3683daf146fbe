package hierarchy

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"time"
)

// sortKey names one precomputed order.
type sortKey uint8

const (
	sortCreatedAt sortKey = iota
	sortUpdatedAt
	sortSuspendedAt
	sortName
	sortDescription
	sortCreatorName
	sortType
	numSortKeys
)

// sortIndex is one sort key's total order (ties broken by Logto id):
// order[r] is the position at rank r, rank[pos] its inverse.
type sortIndex struct {
	order []int32
	rank  []int32
}

// order returns the total order of key, computing it on first use: Build
// computes the default orders, and a Tree only pays for the others once a
// request asks for them.
func (t *Tree) order(key sortKey) *sortIndex {
	t.sortOnce[key].Do(func() {
		if key == sortType {
			t.sorts[key] = t.sortByType()
		} else {
			t.sorts[key] = t.sortBy(key)
		}
	})
	return &t.sorts[key]
}

// sortBy sorts every position by key, NULLs last, then by Logto id.
func (t *Tree) sortBy(key sortKey) sortIndex {
	entries := make([]sortEntry, len(t.nodes))
	if key == sortCreatorName {
		// The lower-cased creator names share one allocation.
		var lower []byte
		ends := make([]int, len(t.nodes))
		for pos := range int32(len(t.nodes)) {
			if c := t.at(pos).Creator; c != nil {
				lower = appendLower(lower, c.Name)
			}
			ends[pos] = len(lower)
		}
		all, start := string(lower), 0
		for pos := range entries {
			entries[pos].s, start = all[start:ends[pos]], ends[pos]
		}
	}
	for pos := range int32(len(t.nodes)) {
		n, o := &t.nodes[pos], t.at(pos)
		e := &entries[pos]
		e.tie, e.pos = t.idRank[pos], pos
		switch key {
		case sortCreatedAt:
			e.a = timeKey(o.CreatedAt)
		case sortUpdatedAt:
			e.a = timeKey(o.UpdatedAt)
		case sortSuspendedAt:
			e.a = nullKey
			if o.Suspended() {
				e.a = timeKey(o.SuspendedAt)
			}
		case sortName:
			e.s = n.name()
		case sortDescription:
			e.s = n.description()
		}
		switch {
		case key == sortCreatorName && n.creatorNull:
			e.a = nullKey
		case e.s != "":
			e.a = prefix8(e.s)
		}
	}
	slices.SortFunc(entries, compareEntries)
	idx := sortIndex{order: make([]int32, len(entries)), rank: make([]int32, len(entries))}
	for r := range entries {
		idx.order[r] = entries[r].pos
		idx.rank[entries[r].pos] = int32(r)
	}
	return idx
}

// sortByType needs no comparisons: the types in the order of their names,
// each holding its organizations in Logto id order.
func (t *Tree) sortByType() sortIndex {
	n := len(t.nodes)
	byID := make([]int32, n)
	for pos, r := range t.idRank {
		byID[r] = int32(pos)
	}
	idx := sortIndex{order: make([]int32, 0, n), rank: make([]int32, n)}
	for _, typ := range []Type{TypeCustomer, TypeDistributor, TypeOwner, TypeReseller} {
		for _, pos := range byID {
			if t.nodes[pos].typ == typ {
				idx.rank[pos] = int32(len(idx.order))
				idx.order = append(idx.order, pos)
			}
		}
	}
	return idx
}

// sortEntry is one organization's key in a sort: an integer word (a time, or
// the first 8 bytes of a string, so that most comparisons are integer ones),
// then the whole string, then the tie-break. Sorting these small flat values
// is much faster than comparing through the Tree.
type sortEntry struct {
	a   uint64
	s   string
	tie int32
	pos int32
}

// nullKey sorts after every time and every string key: no RFC 3339 time
// comes near it, and lower-cased text never holds the byte 0xff.
const nullKey = ^uint64(0)

// compareEntries orders sort entries.
func compareEntries(x, y sortEntry) int {
	if c := cmp.Compare(x.a, y.a); c != 0 {
		return c
	}
	if c := strings.Compare(x.s, y.s); c != 0 {
		return c
	}
	return cmp.Compare(x.tie, y.tie)
}

// timeKey maps a time to a word that compares like it, at the microsecond
// precision the upstream's Postgres timestamps have.
func timeKey(t time.Time) uint64 {
	return uint64(t.UnixMicro()) ^ 1<<63
}

// prefix8 is the first 8 bytes of s as a big-endian integer (zero-padded),
// which compares like the bytes it holds.
func prefix8(s string) uint64 {
	var buf [8]byte
	copy(buf[:], s)
	return binary.BigEndian.Uint64(buf[:])
}
