package cache

import (
	"cmp"
	"index/suffixarray"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// userIndex is the immutable in-memory index of one users snapshot: users
// by id and by home organization, every order the list can be sorted by
// that depends on the users alone, and the text the search scans. It is
// derived once per snapshot (newUserIndex); what depends on the hierarchy
// is bound per tree (see Users).
type userIndex struct {
	// users are the snapshot's records, de-duplicated by id; shared with
	// the snapshot and read-only.
	users []UserRecord
	byID  map[string]int32

	// Home organizations are numbered by slot, so that a binding resolves
	// each distinct organization once rather than once per user.
	slot    []int32          // per user: its home's slot, -1 for none
	slotOf  map[string]int32 // home organization id → slot
	slotOrg []string         // slot → home organization id
	bySlot  [][]int32        // slot → its users, ascending

	orders [numBaseUserSorts]userOrder

	// byRole and byCreator are the users holding a role, and the users a
	// created_by value names (creator snapshot's user or organization, or
	// the plain creating organization): the candidates of those filters.
	byRole    map[string][]int32
	byCreator map[string][]int32
	// roleMask has a bit per role a user holds (roleBit numbers the roles),
	// so that checking the role filter reads eight bytes rather than the
	// record; nil when the snapshot names more than 64 roles.
	roleBit  map[string]uint64
	roleMask []uint64

	// text is every user's lower-cased "name\x00email\x00", in index
	// order; user i's part starts at textAt[i] (textAt has n+1 entries).
	// textIndex is its suffix array: a search of a few bytes or more is a
	// lookup, O(log text + matches), rather than a scan of every user.
	text      string
	textAt    []int32
	textIndex *suffixarray.Index

	bits sync.Pool // *[]uint64 bitsets of len(users) bits, all zero
}

// userSort names one order of the users.
type userSort uint8

const (
	sortUserCreatedAt userSort = iota
	sortUserUpdatedAt
	sortUserLastLogin
	sortUserName
	sortUserEmail
	sortUserUsername
	sortUserCreatorName
	// numBaseUserSorts ends the orders of the users alone; the ones after
	// it depend on the hierarchy and are built per binding, on first use.
	numBaseUserSorts
	sortUserOrganization = numBaseUserSorts
	sortUserStatus       = numBaseUserSorts + 1
)

// parseUserSort reads sort_by (upstream-my-contract §2.10); false for
// anything else.
func parseUserSort(s string) (userSort, bool) {
	switch s {
	case "created_at":
		return sortUserCreatedAt, true
	case "updated_at":
		return sortUserUpdatedAt, true
	case "latest_login_at":
		return sortUserLastLogin, true
	case "name":
		return sortUserName, true
	case "email":
		return sortUserEmail, true
	case "username":
		return sortUserUsername, true
	case "creator_name":
		return sortUserCreatorName, true
	case "organization":
		return sortUserOrganization, true
	case "status":
		return sortUserStatus, true
	}
	return 0, false
}

// userOrder is one ascending order of all users (NULLs last, ties by Logto
// id), and each user's rank in it. Descending is the same order read
// backwards, which gives Postgres's NULLS FIRST for DESC and ties by id
// descending, as the upstream's queries do.
type userOrder struct {
	order []int32
	rank  []int32
}

// newUserIndex derives the index of records. It never fails: a record
// without an id is dropped, and of several records with one id the one
// updated last is kept (the first of them on a tie).
func newUserIndex(records []UserRecord) *userIndex {
	ix := &userIndex{users: dedupeUsers(records)}
	n := len(ix.users)
	ix.byID = make(map[string]int32, n)
	ix.slot = make([]int32, n)
	ix.slotOf = make(map[string]int32)
	var text strings.Builder
	ix.textAt = make([]int32, n+1)
	for i := range ix.users {
		u := &ix.users[i]
		ix.byID[u.ID] = int32(i)
		ix.slot[i] = ix.slotFor(u.HomeOrgID, int32(i))
		ix.textAt[i] = int32(text.Len())
		text.WriteString(strings.ToLower(u.Name))
		text.WriteByte(0)
		text.WriteString(strings.ToLower(u.Email))
		text.WriteByte(0)
	}
	ix.text = text.String()
	ix.textAt[n] = int32(len(ix.text))
	ix.textIndex = suffixarray.New([]byte(ix.text))
	ix.indexRolesAndCreators()
	ix.buildOrders()
	words := (n + 63) / 64
	ix.bits.New = func() any {
		bs := make([]uint64, words)
		return &bs
	}
	return ix
}

// dedupeUsers drops records without an id and all but one record per id.
// It returns records itself when there is nothing to drop (the common
// case), else a compacted copy.
func dedupeUsers(records []UserRecord) []UserRecord {
	keep := make(map[string]int, len(records))
	clean := true
	for i := range records {
		r := &records[i]
		if r.ID == "" {
			clean = false
			continue
		}
		j, dup := keep[r.ID]
		if !dup {
			keep[r.ID] = i
			continue
		}
		clean = false
		if r.UpdatedAt.After(records[j].UpdatedAt) {
			keep[r.ID] = i
		}
	}
	if clean {
		return records
	}
	out := make([]UserRecord, 0, len(keep))
	for i := range records {
		if j, ok := keep[records[i].ID]; ok && j == i {
			out = append(out, records[i])
		}
	}
	return out
}

// indexRolesAndCreators fills byRole, byCreator, roleBit and roleMask.
func (ix *userIndex) indexRolesAndCreators() {
	ix.byRole, ix.byCreator, ix.roleBit = map[string][]int32{}, map[string][]int32{}, map[string]uint64{}
	add := func(m map[string][]int32, key string, i int32) {
		if key != "" {
			if list := m[key]; len(list) == 0 || list[len(list)-1] != i {
				m[key] = append(list, i)
			}
		}
	}
	for i := range ix.users {
		u := &ix.users[i]
		for _, r := range u.Roles {
			add(ix.byRole, r.ID, int32(i))
		}
		if c := u.CreatedBy; c != nil {
			add(ix.byCreator, c.UserID, int32(i))
			add(ix.byCreator, c.OrganizationID, int32(i))
		}
		add(ix.byCreator, u.CreatedByOrgID, int32(i))
	}
	if len(ix.byRole) > 64 {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(ix.byRole)) {
		ix.roleBit[id] = 1 << len(ix.roleBit)
	}
	ix.roleMask = make([]uint64, len(ix.users))
	for i := range ix.users {
		for _, r := range ix.users[i].Roles {
			ix.roleMask[i] |= ix.roleBit[r.ID]
		}
	}
}

// slotFor returns the slot of home organization id, adding user i to it;
// -1 for no home.
func (ix *userIndex) slotFor(id string, i int32) int32 {
	if id == "" {
		return -1
	}
	s, ok := ix.slotOf[id]
	if !ok {
		s = int32(len(ix.slotOrg))
		ix.slotOf[id] = s
		ix.slotOrg = append(ix.slotOrg, id)
		ix.bySlot = append(ix.bySlot, nil)
	}
	ix.bySlot[s] = append(ix.bySlot[s], i)
	return s
}

// len is the number of users indexed.
func (ix *userIndex) len() int { return len(ix.users) }

// buildOrders sorts the users once per order that depends on them alone.
func (ix *userIndex) buildOrders() {
	at := func(f func(*UserRecord) time.Time) func(i int) (int64, int32, bool) {
		return func(i int) (int64, int32, bool) { return timeKey(f(&ix.users[i])) }
	}
	lower := func(f func(*UserRecord) string) func(i int) (string, int32, bool) {
		return func(i int) (string, int32, bool) { return strings.ToLower(f(&ix.users[i])), 0, false }
	}
	ix.orders[sortUserCreatedAt] = sortUsers(ix, at(func(u *UserRecord) time.Time { return u.CreatedAt }))
	ix.orders[sortUserUpdatedAt] = sortUsers(ix, at(func(u *UserRecord) time.Time { return u.UpdatedAt }))
	ix.orders[sortUserLastLogin] = sortUsers(ix, at(func(u *UserRecord) time.Time { return u.LastSignInAt }))
	ix.orders[sortUserName] = sortUsers(ix, lower(func(u *UserRecord) string { return u.Name }))
	ix.orders[sortUserEmail] = sortUsers(ix, lower(func(u *UserRecord) string { return u.Email }))
	ix.orders[sortUserUsername] = sortUsers(ix, lower(func(u *UserRecord) string { return u.Username }))
	ix.orders[sortUserCreatorName] = sortUsers(ix, func(i int) (string, int32, bool) {
		c := ix.users[i].CreatedBy
		if c == nil {
			return "", 0, true
		}
		return strings.ToLower(c.Name), 0, false
	})
}

// timeKey is a time as a sort key: seconds, nanoseconds, and whether it is
// the zero time (NULL). Unlike Unix nanoseconds it cannot overflow, however
// odd a stored date.
func timeKey(t time.Time) (int64, int32, bool) {
	return t.Unix(), int32(t.Nanosecond()), t.IsZero()
}

// orderEntry is one user while an order is sorted: its key (key, then
// sub), whether the key is NULL, and its id for ties, side by side so that
// the sort compares contiguous memory rather than chasing records.
type orderEntry[K cmp.Ordered] struct {
	key  K
	sub  int32
	null bool
	id   string
	i    int32
}

// sortUsers returns the ascending order of the users by key (NULLs last),
// ties broken by Logto id.
func sortUsers[K cmp.Ordered](ix *userIndex, key func(i int) (K, int32, bool)) userOrder {
	n := len(ix.users)
	entries := make([]orderEntry[K], n)
	for i := range entries {
		k, sub, null := key(i)
		entries[i] = orderEntry[K]{key: k, sub: sub, null: null, id: ix.users[i].ID, i: int32(i)}
	}
	slices.SortFunc(entries, func(a, b orderEntry[K]) int {
		c := compareNullable(a.null, b.null, func() int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.sub, b.sub)) })
		return cmp.Or(c, strings.Compare(a.id, b.id))
	})
	o := userOrder{order: make([]int32, n), rank: make([]int32, n)}
	for r, e := range entries {
		o.order[r], o.rank[e.i] = e.i, int32(r)
	}
	return o
}

// compareNullable puts NULLs last, then compares the values.
func compareNullable(aNull, bNull bool, values func() int) int {
	switch {
	case aNull && bNull:
		return 0
	case aNull:
		return 1
	case bNull:
		return -1
	}
	return values()
}

// minIndexedSearch is the shortest term looked up in the suffix array:
// shorter ones match so much of the text that scanning it is cheaper than
// sorting the matches out of the index.
const minIndexedSearch = 3

// searchHits yields, once each, the users whose lower-cased name or email
// contains term (already lower-cased, without NUL). A match cannot span two
// fields or two users: the term holds no NUL, which ends every field.
func (ix *userIndex) searchHits(term string, yield func(int32) bool) {
	if len(term) >= minIndexedSearch {
		offsets := ix.textIndex.Lookup([]byte(term), -1)
		users := make([]int32, len(offsets))
		for k, off := range offsets {
			users[k] = ix.userAt(int32(off))
		}
		slices.Sort(users)
		for _, i := range slices.Compact(users) {
			if !yield(i) {
				return
			}
		}
		return
	}
	for from := 0; from < len(ix.text); {
		j := strings.Index(ix.text[from:], term)
		if j < 0 {
			return
		}
		i := ix.userAt(int32(from + j))
		if !yield(i) {
			return
		}
		from = int(ix.textAt[i+1])
	}
}

// userAt returns the user whose part of text holds offset pos: the last
// one starting at or before it.
func (ix *userIndex) userAt(pos int32) int32 {
	return int32(sort.Search(len(ix.users), func(k int) bool { return ix.textAt[k+1] > pos }))
}

// matchesSearch reports whether user i's name or email contains term.
func (ix *userIndex) matchesSearch(i int32, term string) bool {
	return strings.Contains(ix.text[ix.textAt[i]:ix.textAt[i+1]], term)
}

func (ix *userIndex) getBits() *[]uint64 { return ix.bits.Get().(*[]uint64) }

// putBits returns a bitset to the pool, cleared.
func (ix *userIndex) putBits(bs *[]uint64) {
	clear(*bs)
	ix.bits.Put(bs)
}
