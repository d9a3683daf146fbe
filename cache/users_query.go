package cache

import (
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// Users is one users snapshot bound to one hierarchy tree: what a user read
// asks. It is immutable and safe for concurrent use; the view builds one
// per (snapshot, tree) pair and shares it between requests.
//
// The rules it applies, which the upstream's database held and Logto does
// not (upstream-my-contract §2.10, DESIGN §3):
//
//   - A user's home organization is its HomeOrgID. Users whose home is the
//     Owner organization are never listed and never found by others (the
//     upstream has no rows for them); a user may still read itself.
//   - Visibility: the principals that see everything (the Owner, tree-wide
//     services) see every other user, including users without a home
//     organization or whose home the tree does not know yet; any other
//     principal sees the users whose home is one of its scope's
//     non-deleted organizations (hierarchy.Scope.LogtoIDs).
//   - Deleted: the home organization is soft-deleted; deleted_at is its
//     deletedAt. Deleted users are listed only under status=deleted (to
//     the principals that see everything, since no other scope holds a
//     deleted organization) and never found by id.
//   - Suspended: the home organization is suspended, directly or by
//     cascade — suspended_at is then its effective suspension time and
//     suspended_by_org_id the organization whose suspension reaches the
//     user (the home itself when directly suspended), as the upstream's
//     cascade writes them — or else Logto's isSuspended is set. Logto keeps
//     no time for that flag, so suspended_at is then the user's updatedAt:
//     Logto refuses a suspended user's sign-ins, so the suspension is the
//     last change to the user unless an administrator edited it since; and
//     suspended_by_org_id is null, as for a direct suspension upstream.
type Users struct {
	ix    *userIndex
	tree  *hierarchy.Tree
	homes []homeState // per home slot
	owner int32       // the Owner organization's slot, -1 if no user's home
	// state holds each user's status, and userOwnerHome for the Owner
	// organization's users: one byte per user, so that the lists that
	// walk every user read one small array.
	state []userStatus
	// counts are the numbers of users of each status that the principals
	// seeing everything see, so that their unfiltered lists are counted
	// without a walk.
	counts  [3]int
	byOrg   lazyOrder // sort_by=organization
	byState lazyOrder // sort_by=status
}

// homeState is what the bound tree says about one home organization.
type homeState struct {
	known       bool // the tree knows the organization
	deleted     bool
	suspended   bool
	deletedAt   time.Time
	suspendedAt time.Time
	suspendedBy string // the organization whose suspension reaches it
	name        string // its name, for sort_by=organization
}

// lazyOrder is an order built on first use.
type lazyOrder struct {
	once sync.Once
	o    userOrder
}

// bindUsers resolves every distinct home organization of ix in tree, then
// every user's status.
func bindUsers(ix *userIndex, tree *hierarchy.Tree) *Users {
	u := &Users{ix: ix, tree: tree, homes: make([]homeState, len(ix.slotOrg)), owner: -1}
	if s, ok := ix.slotOf[tree.OwnerID()]; ok && tree.OwnerID() != "" {
		u.owner = s
	}
	for s, id := range ix.slotOrg {
		o, ok := tree.Org(id)
		if !ok {
			continue
		}
		h := homeState{known: true, deleted: o.Deleted(), deletedAt: o.DeletedAt, name: o.Name}
		if o.Suspended() {
			h.suspended, h.suspendedAt, h.suspendedBy = true, o.SuspendedAt, o.SuspendedByOrgID
			if h.suspendedBy == "" {
				h.suspendedBy = o.LogtoID
			}
		}
		u.homes[s] = h
	}
	u.bindStates()
	return u
}

// Len is the number of users in the snapshot, Owner-organization users
// included.
func (u *Users) Len() int { return len(u.ix.users) }

// User is one user as the user reads serve it.
type User struct {
	// UserRecord is the stored user, shared with the snapshot: read-only.
	*UserRecord
	// Organization is the home organization, nil when the user has none
	// the tree knows.
	Organization *UserOrganization
	// SuspendedAt, SuspendedByOrgID and DeletedAt follow the rules of
	// Users; zero values are served as null.
	SuspendedAt      time.Time
	SuspendedByOrgID string
	DeletedAt        time.Time
}

// UserOrganization is a user's home organization as the user object
// carries it: {id, logto_id, name, type}.
type UserOrganization struct {
	ID      hierarchy.UUID
	LogtoID string
	Name    string
	Type    hierarchy.Type
}

// bindStates fills state and counts from the bound homes.
func (u *Users) bindStates() {
	u.state = make([]userStatus, len(u.ix.users))
	for i := range u.state {
		st := u.status(int32(i))
		if s := u.ix.slot[i]; s >= 0 && s == u.owner {
			st |= userOwnerHome
		} else {
			u.counts[bits.TrailingZeros8(uint8(st))]++
		}
		u.state[i] = st
	}
}

// userStatus is a set of the states a list shows; a user has exactly one.
type userStatus uint8

const (
	userEnabled userStatus = 1 << iota
	userSuspended
	userDeleted
	// userOwnerHome marks the Owner organization's users, which no list
	// shows; it is never part of a query's set.
	userOwnerHome
)

// parseUserStatus reads `status` by the organization lists' rule
// (hierarchy.ParseStatus), so the two can never disagree.
func parseUserStatus(values []string) userStatus {
	set := hierarchy.ParseStatus(values)
	var s userStatus
	if set.Has(hierarchy.StatusEnabled) {
		s |= userEnabled
	}
	if set.Has(hierarchy.StatusSuspended) {
		s |= userSuspended
	}
	if set.Has(hierarchy.StatusDeleted) {
		s |= userDeleted
	}
	return s
}

// home returns the state of user i's home organization and whether it has
// one.
func (u *Users) home(i int32) (*homeState, bool) {
	s := u.ix.slot[i]
	if s < 0 {
		return nil, false
	}
	return &u.homes[s], true
}

// status derives user i's status from its home and its own flag.
func (u *Users) status(i int32) userStatus {
	h, ok := u.home(i)
	switch {
	case ok && h.deleted:
		return userDeleted
	case ok && h.suspended, u.ix.users[i].Suspended:
		return userSuspended
	}
	return userEnabled
}

// suspension returns when user i was suspended (zero when it is not) and
// by which organization ("" for the user's own suspension).
func (u *Users) suspension(i int32) (time.Time, string) {
	if h, ok := u.home(i); ok && h.suspended {
		return h.suspendedAt, h.suspendedBy
	}
	if r := &u.ix.users[i]; r.Suspended {
		return r.UpdatedAt, ""
	}
	return time.Time{}, ""
}

// user is user i as served.
func (u *Users) user(i int32) User {
	r := &u.ix.users[i]
	out := User{UserRecord: r}
	if h, ok := u.home(i); ok && h.known {
		if o, found := u.tree.Org(r.HomeOrgID); found {
			out.Organization = &UserOrganization{ID: o.ID, LogtoID: o.LogtoID, Name: o.Name, Type: o.Type}
		}
		if h.deleted {
			out.DeletedAt = h.deletedAt
		}
	}
	out.SuspendedAt, out.SuspendedByOrgID = u.suspension(i)
	return out
}

// visible reports whether p may see user i (before the status filter).
func (u *Users) visible(scope hierarchy.Scope, i int32) bool {
	s := u.ix.slot[i]
	switch {
	case u.state[i]&userOwnerHome != 0:
		return false
	case scope.Everything():
		return true
	case s < 0:
		return false
	}
	h := &u.homes[s]
	return scope.Contains(u.ix.slotOrg[s]) && !h.deleted
}

// Find returns the user with Logto id id as GET /users/{id} may serve it to
// p: visible to p and not deleted. A miss and an invisible user look the
// same, so that existence never leaks. Permission gates are the caller's.
func (u *Users) Find(p hierarchy.Principal, id string) (User, bool) {
	i, ok := u.ix.byID[id]
	if !ok || u.state[i]&userDeleted != 0 || !u.visible(u.tree.Scope(p), i) {
		return User{}, false
	}
	return u.user(i), true
}

// Get returns the user with Logto id id whoever asks, for a user reading
// itself: a deleted user is not found even then, as upstream.
func (u *Users) Get(id string) (User, bool) {
	i, ok := u.ix.byID[id]
	if !ok || u.state[i]&userDeleted != 0 {
		return User{}, false
	}
	return u.user(i), true
}

// UserQuery is a GET /users request with the upstream's parameters as the
// HTTP layer received them; the rules for reading them are applied here
// (unknown values ignored, invalid ids dropped, out-of-range paging reset),
// so every value is safe.
type UserQuery struct {
	// Search is a case-insensitive substring of the name or the email.
	Search string
	// Status values (enabled, suspended, deleted; any case) are
	// OR-combined; unknown ones are ignored; none lists enabled and
	// suspended users.
	Status []string
	// RoleIDs keeps users holding any of these global roles.
	RoleIDs []string
	// CreatedBy keeps users whose creator snapshot's user_id or
	// organization_id, or whose creating organization (customData.createdBy
	// as a plain id), is one of these ids (^[A-Za-z0-9_-]{1,64}$; others are
	// dropped).
	CreatedBy []string
	// OrganizationIDs keeps users whose home is one of these organizations
	// (same id rule). For a principal that does not see everything they are
	// intersected with its scope: an empty intersection lists nothing.
	OrganizationIDs []string
	// SortBy is name, email, username, created_at, updated_at,
	// latest_login_at, organization (its name), creator_name or status
	// (suspended_at); anything else means created_at descending. Names are
	// compared case-insensitively.
	SortBy string
	// Desc sorts descending (sort_direction=desc).
	Desc bool
	// Page (from 1) and PageSize (1..100, else 20).
	Page, PageSize int
}

// UserPage is one page of users, in order, with the number of users
// matching the whole query and the paging actually applied.
type UserPage struct {
	// Users is never nil, so that an empty page encodes as [].
	Users    []User
	Total    int
	Page     int
	PageSize int
}

// userFilter is the per-user part of a UserQuery.
type userFilter struct {
	status    userStatus
	search    string              // lower-cased; "" searches nothing
	noMatch   bool                // the search can match nothing
	roles     map[string]struct{} // nil: no role filter
	roleMask  uint64              // the roles' bits, when the index has masks
	createdBy map[string]struct{} // nil: no created_by filter
}

func newUserFilter(ix *userIndex, q UserQuery) userFilter {
	f := userFilter{status: parseUserStatus(q.Status), search: strings.ToLower(q.Search)}
	f.noMatch = strings.Contains(f.search, "\x00")
	if len(q.RoleIDs) > 0 {
		f.roles = make(map[string]struct{}, len(q.RoleIDs))
		for _, id := range q.RoleIDs {
			f.roles[id] = struct{}{}
			f.roleMask |= ix.roleBit[id]
		}
	}
	if ids := hierarchy.ValidIDs(q.CreatedBy); len(ids) > 0 {
		f.createdBy = make(map[string]struct{}, len(ids))
		for _, id := range ids {
			f.createdBy[id] = struct{}{}
		}
	}
	return f
}

// matches reports whether user i passes f; search says whether the search
// term still has to be checked (it has not been by the candidates).
func (f *userFilter) matches(u *Users, i int32, search bool) bool {
	if u.state[i]&f.status == 0 {
		return false
	}
	if f.roles != nil {
		if u.ix.roleMask != nil {
			if u.ix.roleMask[i]&f.roleMask == 0 {
				return false
			}
		} else if !holdsAny(u.ix.users[i].Roles, f.roles) {
			return false
		}
	}
	if f.createdBy != nil && !createdByAny(&u.ix.users[i], f.createdBy) {
		return false
	}
	return !search || u.ix.matchesSearch(i, f.search)
}

func holdsAny(roles []RoleRef, set map[string]struct{}) bool {
	for _, r := range roles {
		if _, ok := set[r.ID]; ok {
			return true
		}
	}
	return false
}

func createdByAny(r *UserRecord, set map[string]struct{}) bool {
	if r.CreatedByOrgID != "" {
		if _, ok := set[r.CreatedByOrgID]; ok {
			return true
		}
	}
	if c := r.CreatedBy; c != nil {
		_, byUser := set[c.UserID]
		_, byOrg := set[c.OrganizationID]
		return byUser || byOrg
	}
	return false
}

// List answers GET /users for p: the users p may see matching q, one page
// of them in the requested order.
func (u *Users) List(p hierarchy.Principal, q UserQuery) UserPage {
	page, size := q.Page, q.PageSize
	if page < 1 {
		page = 1
	}
	if size < 1 || size > 100 {
		size = 20
	}
	key, known := parseUserSort(q.SortBy)
	desc := q.Desc
	if !known {
		key, desc = sortUserCreatedAt, true
	}
	f := newUserFilter(u.ix, q)
	scope := u.tree.Scope(p)
	if f.noMatch {
		return u.collect(nil, key, desc, page, size)
	}
	if scope.Everything() && f.search == "" && f.roles == nil && f.createdBy == nil && len(hierarchy.ValidIDs(q.OrganizationIDs)) == 0 {
		return u.walk(f.status, key, desc, page, size)
	}
	cands, searched := u.candidates(scope, &f, q.OrganizationIDs)
	return u.collect(func(yield func(int32) bool) {
		cands(func(i int32) bool {
			return !f.matches(u, i, f.search != "" && !searched) || yield(i)
		})
	}, key, desc, page, size)
}

// candidates yields the users p may see, narrowed by the organization_id
// filter when given, else — for the principals that see everything — by
// the most selective index the other filters have; searched reports whether
// they already match the search term. A user may be yielded twice (it
// holds two of the roles asked for, say); collect counts it once.
func (u *Users) candidates(scope hierarchy.Scope, f *userFilter, orgIDs []string) (func(yield func(int32) bool), bool) {
	if ids := hierarchy.ValidIDs(orgIDs); len(ids) > 0 {
		return u.inOrgs(scope, ids), false
	}
	if !scope.Everything() {
		return u.inOrgs(scope, nil), false
	}
	visible := func(i int32) bool { return u.state[i]&userOwnerHome == 0 }
	switch {
	case f.createdBy != nil:
		return u.inPostings(u.ix.byCreator, f.createdBy, visible), false
	case f.search != "":
		return func(yield func(int32) bool) {
			u.ix.searchHits(f.search, func(i int32) bool { return !visible(i) || yield(i) })
		}, true
	case f.roles != nil:
		return u.inPostings(u.ix.byRole, f.roles, visible), false
	}
	return func(yield func(int32) bool) {
		for i := range int32(len(u.ix.users)) {
			if visible(i) && !yield(i) {
				return
			}
		}
	}, false
}

// inPostings yields the visible users listed under any of keys.
func (u *Users) inPostings(postings map[string][]int32, keys map[string]struct{}, visible func(int32) bool) func(yield func(int32) bool) {
	return func(yield func(int32) bool) {
		for k := range keys {
			for _, i := range postings[k] {
				if visible(i) && !yield(i) {
					return
				}
			}
		}
	}
}

// inOrgs yields the users whose home is one of ids (nil: every non-deleted
// organization of the scope) and which p may see.
func (u *Users) inOrgs(scope hierarchy.Scope, ids []string) func(yield func(int32) bool) {
	each := func(yield func(string) bool) {
		for _, id := range ids {
			if !yield(id) {
				return
			}
		}
	}
	if ids == nil {
		each = scope.LogtoIDs()
	}
	return func(yield func(int32) bool) {
		for id := range each {
			s, ok := u.ix.slotOf[id]
			if !ok || s == u.owner || (!scope.Everything() && (!scope.Contains(id) || u.homes[s].deleted)) {
				continue
			}
			for _, i := range u.ix.bySlot[s] {
				if !yield(i) {
					return
				}
			}
		}
	}
}

// walk answers the lists that filter on status alone, for the principals
// that see everything — the dashboard's default user list — by reading the
// order itself: the total is counted at binding, and a page costs its
// offset plus its size rather than a pass over every user.
func (u *Users) walk(status userStatus, key userSort, desc bool, page, size int) UserPage {
	out := UserPage{Users: []User{}, Page: page, PageSize: size}
	for b := range 3 {
		if status&(1<<b) != 0 {
			out.Total += u.counts[b]
		}
	}
	if page-1 >= (out.Total+size-1)/size {
		return out
	}
	skip := (page - 1) * size
	out.Users = make([]User, 0, min(size, out.Total-skip))
	order := u.order(key).order
	for k := range order {
		if desc {
			k = len(order) - 1 - k
		}
		i := order[k]
		if st := u.state[i]; st&status == 0 || st&userOwnerHome != 0 {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if out.Users = append(out.Users, u.user(i)); len(out.Users) == size {
			break
		}
	}
	return out
}

// collect runs a query: it marks the rank of every matching user in a
// bitset over the sort key's order, which both counts the matches and sorts
// them in O(matches + N/64), then reads the requested page off the bitset.
func (u *Users) collect(matches func(yield func(int32) bool), key userSort, desc bool, page, size int) UserPage {
	out := UserPage{Users: []User{}, Page: page, PageSize: size}
	if matches == nil || len(u.ix.users) == 0 {
		return out
	}
	o := u.order(key)
	bsp := u.ix.getBits()
	defer u.ix.putBits(bsp)
	bs := *bsp
	for i := range matches {
		r := o.rank[i]
		if w, bit := r>>6, uint64(1)<<(r&63); bs[w]&bit == 0 {
			bs[w] |= bit
			out.Total++
		}
	}
	if page-1 >= (out.Total+size-1)/size {
		return out // past the last page (also guards the offset against overflow)
	}
	skip := (page - 1) * size
	out.Users = make([]User, 0, min(size, out.Total-skip))
	for w := range len(bs) {
		if desc {
			w = len(bs) - 1 - w
		}
		word := bs[w]
		if c := bits.OnesCount64(word); skip >= c {
			skip -= c
			continue
		}
		for word != 0 && len(out.Users) < size {
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
			out.Users = append(out.Users, u.user(o.order[w<<6|b]))
		}
		if len(out.Users) == size {
			break
		}
	}
	return out
}

// order returns the order of key, building a tree-bound one on first use.
func (u *Users) order(key userSort) *userOrder {
	switch key {
	case sortUserOrganization:
		u.byOrg.once.Do(func() {
			names := make([]string, len(u.homes))
			for s := range u.homes {
				names[s] = strings.ToLower(u.homes[s].name)
			}
			u.byOrg.o = sortUsers(u.ix, func(i int) (string, int32, bool) {
				s := u.ix.slot[i]
				if s < 0 || !u.homes[s].known {
					return "", 0, true
				}
				return names[s], 0, false
			})
		})
		return &u.byOrg.o
	case sortUserStatus:
		u.byState.once.Do(func() {
			u.byState.o = sortUsers(u.ix, func(i int) (int64, int32, bool) {
				at, _ := u.suspension(int32(i))
				return timeKey(at)
			})
		})
		return &u.byState.o
	}
	return &u.ix.orders[key]
}
