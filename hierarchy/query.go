package hierarchy

import (
	"math/bits"
	"slices"
	"strings"
)

// Query is a list request for customers, resellers or distributors, with the
// upstream's parameters as the HTTP layer received them: the Tree applies the
// upstream's rules for reading them (unknown values ignored, invalid ids
// dropped, out-of-range paging reset), so every value is safe.
type Query struct {
	// Search is a case-insensitive substring of the name, the description
	// or any top-level customData value except createdBy and createdByUser.
	Search string
	// Status values (enabled, suspended, deleted; any case) are OR-combined;
	// unknown ones are ignored. Without deleted, soft-deleted organizations
	// are excluded; with none, enabled and suspended are listed.
	Status []string
	// CreatedBy keeps organizations whose creator snapshot's user_id or
	// organization_id is one of these ids.
	CreatedBy []string
	// OrganizationIDs keeps organizations whose createdBy is one of these
	// ids (customers and resellers only).
	OrganizationIDs []string
	// IncludeHierarchy expands each of OrganizationIDs with its non-deleted
	// resellers and the customers of both.
	IncludeHierarchy bool
	// SortBy is name, description, created_at, updated_at, suspended_at or
	// creator_name; anything else means created_at descending.
	SortBy string
	// SortDirection is "desc" (any case) or ascending.
	SortDirection string
	// Page (from 1) and PageSize (1..100, else 20).
	Page, PageSize int
}

// OrgQuery is a GET /organizations (picker) request. It lists non-deleted
// organizations of every type in the principal's scope.
type OrgQuery struct {
	// Search is a case-insensitive substring of the name or description.
	Search string
	// Type, Name and Description are exact matches when not "".
	Type, Name, Description string
	// SortBy is name, description or type; anything else means name
	// ascending.
	SortBy        string
	SortDirection string
	Page          int
	PageSize      int
}

// Page is one page of a list, in order, with the number of organizations
// matching the whole query and the paging actually applied.
type Page struct {
	// Orgs is never nil, so that an empty page encodes as [].
	Orgs     []Org
	Total    int
	Page     int
	PageSize int
}

// The paging rules (upstream §1.1).
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// listSortKeys are the sort_by values of the three entity lists.
func listSortKey(s string) (sortKey, bool) {
	switch s {
	case "name":
		return sortName, true
	case "description":
		return sortDescription, true
	case "created_at":
		return sortCreatedAt, true
	case "updated_at":
		return sortUpdatedAt, true
	case "suspended_at":
		return sortSuspendedAt, true
	case "creator_name":
		return sortCreatorName, true
	}
	return 0, false
}

// pickerSortKey reads the sort_by values of GET /organizations.
func pickerSortKey(s string) (sortKey, bool) {
	switch s {
	case "name":
		return sortName, true
	case "description":
		return sortDescription, true
	case "type":
		return sortType, true
	}
	return 0, false
}

// StatusSet is the set of states a list shows (the `status` query
// parameter). It is exported so that every list of the service — the users'
// too — reads `status` by the same rule.
type StatusSet uint8

// The states of the status rule.
const (
	StatusEnabled StatusSet = 1 << iota
	StatusSuspended
	StatusDeleted
)

// ParseStatus applies the upstream's status rule: values in any case,
// unknown ones ignored, OR-combined; none at all means enabled and
// suspended (soft-deleted rows only show when asked for).
func ParseStatus(values []string) StatusSet {
	var s StatusSet
	for _, v := range values {
		switch strings.ToLower(v) {
		case "enabled":
			s |= StatusEnabled
		case "suspended":
			s |= StatusSuspended
		case "deleted":
			s |= StatusDeleted
		}
	}
	if s == 0 {
		s = StatusEnabled | StatusSuspended
	}
	return s
}

// Has reports whether the set includes state.
func (s StatusSet) Has(state StatusSet) bool { return s&state != 0 }

// matches reports whether a node's state is one of s.
func (s StatusSet) matches(n *node) bool {
	switch {
	case n.deleted:
		return s&StatusDeleted != 0
	case n.suspended:
		return s&StatusSuspended != 0
	}
	return s&StatusEnabled != 0
}

// ValidIDs keeps the values that look like Logto ids (^[A-Za-z0-9_-]{1,64}$),
// without duplicates and in order, as the upstream does before filtering on
// them (created_by, organization_id). A set keeps this linear however many
// values a request repeats. Exported so every list applies the same rule.
func ValidIDs(values []string) []string {
	var out []string
	seen := make(map[string]struct{})
	for _, v := range values {
		if _, dup := seen[v]; !dup && isLogtoID(v) {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}

// isLogtoID reports whether s matches ^[A-Za-z0-9_-]{1,64}$.
func isLogtoID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// normalizePage applies the paging rule: page < 1 → 1; size outside
// 1..100 → 20.
func normalizePage(page, size int) (int, int) {
	if page < 1 {
		page = 1
	}
	if size < 1 || size > maxPageSize {
		size = defaultPageSize
	}
	return page, size
}

// orderBy resolves sort_by and sort_direction, falling back to def.
func orderBy(key sortKey, known bool, direction string, def sortKey, defDesc bool) (sortKey, bool) {
	if !known {
		return def, defDesc
	}
	return key, strings.EqualFold(direction, "desc")
}

// List answers GET /customers, /resellers or /distributors (typ) for p: the
// organizations of that type in p's scope matching q, one page of them in
// the requested order (ties broken by Logto id in the same direction). Any
// other typ gives an empty page.
func (t *Tree) List(p Principal, typ Type, q Query) Page {
	page, size := normalizePage(q.Page, q.PageSize)
	k, known := listSortKey(q.SortBy)
	key, desc := orderBy(k, known, q.SortDirection, sortCreatedAt, true)
	f := newFilter(q)
	scope := t.Scope(p)
	if typ != TypeDistributor && typ != TypeReseller && typ != TypeCustomer {
		return t.collect(nil, key, desc, page, size)
	}

	var candidates func(yield func(int32) bool)
	if ids := ValidIDs(q.OrganizationIDs); len(ids) > 0 && typ != TypeDistributor {
		if q.IncludeHierarchy {
			ids = t.expand(ids)
		}
		candidates = t.childrenOf(ids, typ, scope)
	} else {
		candidates = t.inRange(typ, scope)
	}
	return t.collect(func(yield func(int32) bool) {
		candidates(func(pos int32) bool {
			return !f.matches(t, pos) || yield(pos)
		})
	}, key, desc, page, size)
}

// ListOrganizations answers GET /organizations for p: the non-deleted
// organizations in p's scope (never the Owner) matching q.
func (t *Tree) ListOrganizations(p Principal, q OrgQuery) Page {
	page, size := normalizePage(q.Page, q.PageSize)
	k, known := pickerSortKey(q.SortBy)
	key, desc := orderBy(k, known, q.SortDirection, sortName, false)
	types := []Type{TypeDistributor, TypeReseller, TypeCustomer}
	if q.Type != "" {
		typ, ok := ParseType(q.Type)
		if !ok || typ.String() != q.Type {
			return t.collect(nil, key, desc, page, size)
		}
		types = []Type{typ}
	}
	search := lowerSearch(q.Search)
	scope := t.Scope(p)
	return t.collect(func(yield func(int32) bool) {
		for _, typ := range types {
			for pos := range t.inRange(typ, scope) {
				n, o := &t.nodes[pos], t.at(pos)
				switch {
				case n.deleted,
					q.Name != "" && o.Name != q.Name,
					q.Description != "" && o.Description != q.Description,
					search.set && !search.in(n.blob[:n.descEnd]):
					continue
				}
				if !yield(pos) {
					return
				}
			}
		}
	}, key, desc, page, size)
}

// filter is the per-organization part of a Query.
type filter struct {
	status    StatusSet
	search    search
	createdBy map[string]struct{} // nil: no created_by filter
}

// newFilter reads the per-organization parameters of q.
func newFilter(q Query) filter {
	f := filter{status: ParseStatus(q.Status), search: lowerSearch(q.Search)}
	if ids := ValidIDs(q.CreatedBy); len(ids) > 0 {
		f.createdBy = make(map[string]struct{}, len(ids))
		for _, id := range ids {
			f.createdBy[id] = struct{}{}
		}
	}
	return f
}

// matches reports whether the organization at pos passes f.
func (f *filter) matches(t *Tree, pos int32) bool {
	n := &t.nodes[pos]
	if !f.status.matches(n) {
		return false
	}
	if f.createdBy != nil {
		c := t.at(pos).Creator
		if c == nil {
			return false
		}
		_, byUser := f.createdBy[c.UserID]
		_, byOrg := f.createdBy[c.OrganizationID]
		if !byUser && !byOrg {
			return false
		}
	}
	return !f.search.set || f.search.in(n.blob)
}

// search is a lower-cased search term.
type search struct {
	term string
	set  bool
}

// lowerSearch prepares a search term; "" searches nothing.
func lowerSearch(s string) search {
	if s == "" {
		return search{}
	}
	return search{term: string(appendLower(nil, s)), set: true}
}

// in reports whether the term occurs within one NUL-separated field of text.
// A term containing NUL matches nothing (text fields cannot hold one
// upstream).
func (s search) in(text string) bool {
	return !strings.Contains(s.term, "\x00") && strings.Contains(text, s.term)
}

// inRange yields the positions of type typ inside scope, ascending.
func (t *Tree) inRange(typ Type, s Scope) func(yield func(int32) bool) {
	return func(yield func(int32) bool) {
		if s.lo >= s.hi {
			return
		}
		list := t.byType[typ]
		i, _ := slices.BinarySearch(list, s.lo)
		for ; i < len(list) && list[i] < s.hi; i++ {
			if !yield(list[i]) {
				return
			}
		}
	}
}

// childrenOf yields the organizations of type typ inside scope whose
// createdBy is one of ids.
func (t *Tree) childrenOf(ids []string, typ Type, s Scope) func(yield func(int32) bool) {
	return func(yield func(int32) bool) {
		for _, id := range ids {
			for _, pos := range t.children[id] {
				if t.nodes[pos].typ == typ && s.lo <= pos && pos < s.hi && !yield(pos) {
					return
				}
			}
		}
	}
}

// expand is include_hierarchy: each id, plus the non-deleted resellers whose
// createdBy it is, plus the customers whose createdBy is either.
func (t *Tree) expand(ids []string) []string {
	out := slices.Clone(ids)
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	add := func(id string) {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	for _, id := range ids {
		parents := []string{id}
		for _, pos := range t.children[id] {
			if t.nodes[pos].typ == TypeReseller && !t.nodes[pos].deleted {
				add(t.at(pos).LogtoID)
				parents = append(parents, t.at(pos).LogtoID)
			}
		}
		for _, parent := range parents {
			for _, pos := range t.children[parent] {
				if t.nodes[pos].typ == TypeCustomer {
					add(t.at(pos).LogtoID)
				}
			}
		}
	}
	return out
}

// collect runs a query: it marks the rank of every matching position in a
// bitset over the sort key's order, which both counts the matches and sorts
// them in O(matches + N/64), then reads the requested page off the bitset.
func (t *Tree) collect(matches func(yield func(int32) bool), key sortKey, desc bool, page, size int) Page {
	out := Page{Orgs: []Org{}, Page: page, PageSize: size}
	if matches == nil || len(t.nodes) == 0 {
		return out
	}
	bs := t.getBits()
	defer t.putBits(bs)

	idx := t.order(key)
	rank := idx.rank
	for pos := range matches {
		r := rank[pos]
		bs[r>>6] |= 1 << (r & 63)
		out.Total++
	}
	if page-1 >= (out.Total+size-1)/size {
		return out // past the last page (also guards the offset against overflow)
	}
	skip := (page - 1) * size
	out.Orgs = make([]Org, 0, min(size, out.Total-skip))
	order := idx.order
	for w := range len(bs) {
		if desc {
			w = len(bs) - 1 - w
		}
		word := bs[w]
		if c := bits.OnesCount64(word); skip >= c {
			skip -= c
			continue
		}
		for word != 0 {
			var b int
			if desc {
				b = 63 - bits.LeadingZeros64(word)
			} else {
				b = bits.TrailingZeros64(word)
			}
			word &^= 1 << b
			if skip > 0 {
				skip--
				continue
			}
			out.Orgs = append(out.Orgs, *t.at(order[w<<6|b]))
			if len(out.Orgs) == size {
				return out
			}
		}
	}
	return out
}

// getBits returns a zeroed bitset with one bit per position.
func (t *Tree) getBits() []uint64 {
	if bs, ok := t.bits.Get().(*[]uint64); ok {
		return *bs
	}
	return make([]uint64, (len(t.nodes)+63)/64)
}

// putBits zeroes a bitset and keeps it for the next query.
func (t *Tree) putBits(bs []uint64) {
	clear(bs)
	t.bits.Put(&bs)
}
