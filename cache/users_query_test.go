package cache_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// A small tree whose expectations can be checked by hand:
//
//	Owner
//	├── d1 (distributor)
//	│   ├── d1r1 (reseller, suspended directly)
//	│   │   └── d1r1c1 (customer: suspended by cascade from d1r1)
//	│   ├── d1r2 (reseller, soft-deleted)
//	│   │   └── d1r2c1 (customer: its parent is deleted)
//	│   └── d1c1 (customer, suspended directly)
//	└── d2 (distributor)
//	    └── d2r1 (reseller)
//	        └── d2r1c1 (customer)
const (
	suspendedR = "2025-02-01T10:00:00Z"
	suspendedC = "2025-03-01T10:00:00Z"
	deletedR   = "2025-04-01T10:00:00Z"
)

func handTree(t *testing.T) *hierarchy.Tree {
	t.Helper()
	org := func(id, typ, parent, extra string) hierarchy.Record {
		cd := fmt.Sprintf(`{"type":%q,"createdBy":%q%s}`, typ, parent, extra)
		return hierarchy.Record{ID: id, Name: strings.ToUpper(id) + " Org", CustomData: []byte(cd), CreatedAt: time.Unix(1, 0)}
	}
	tree := hierarchy.Build([]hierarchy.Record{
		{ID: "owner", Name: "Owner"},
		org("d1", "distributor", "owner", ""),
		org("d1r1", "reseller", "d1", `,"suspendedAt":"`+suspendedR+`"`),
		org("d1r1c1", "customer", "d1r1", ""),
		org("d1r2", "reseller", "d1", `,"deletedAt":"`+deletedR+`"`),
		org("d1r2c1", "customer", "d1r2", ""),
		org("d1c1", "customer", "d1", `,"suspendedAt":"`+suspendedC+`"`),
		org("d2", "distributor", "owner", ""),
		org("d2r1", "reseller", "d2", ""),
		org("d2r1c1", "customer", "d2r1", ""),
	}, hierarchy.Options{})
	if p := tree.Stats().Problems; p.Total() != 0 {
		t.Fatalf("the hand tree has problems: %v", p)
	}
	return tree
}

// handUsers gives every organization of handTree one user named after it
// (u-<org>), plus a user without a home, one in an unknown organization and
// one suspended in Logto.
func handUsers() []cache.UserRecord {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var users []cache.UserRecord
	for i, org := range []string{"owner", "d1", "d1r1", "d1r1c1", "d1r2", "d1r2c1", "d1c1", "d2", "d2r1", "d2r1c1"} {
		users = append(users, cache.UserRecord{
			ID: "u-" + org, Name: "User of " + org, Email: org + "@example.com", Username: "user_" + org,
			HomeOrgID: org, HomeSource: cache.HomeCustomData,
			CreatedAt: base.Add(time.Duration(i) * time.Hour), UpdatedAt: base.Add(time.Duration(i) * time.Hour),
		})
	}
	users = append(users,
		cache.UserRecord{ID: "u-homeless", Name: "Nobody", CreatedAt: base.Add(20 * time.Hour)},
		cache.UserRecord{ID: "u-unknown", Name: "Stranger", HomeOrgID: "neworg", HomeSource: cache.HomeCustomData, CreatedAt: base.Add(21 * time.Hour)},
		cache.UserRecord{ID: "u-banned", Name: "Banned", HomeOrgID: "d2r1c1", HomeSource: cache.HomeMembership, Suspended: true,
			CreatedAt: base.Add(22 * time.Hour), UpdatedAt: base.Add(30 * time.Hour)},
	)
	return users
}

func principal(org string, role hierarchy.Role) hierarchy.Principal {
	return hierarchy.Principal{OrgID: org, Role: role, Permissions: []string{hierarchy.PermReadUsers}}
}

func ids(p cache.UserPage) []string {
	out := make([]string, len(p.Users))
	for i, u := range p.Users {
		out[i] = u.ID
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestUsersScopeByPrincipal(t *testing.T) {
	users := cache.BindUsers(handUsers(), handTree(t))
	all := cache.UserQuery{Status: []string{"enabled", "suspended", "deleted"}, PageSize: 100}
	cases := []struct {
		name string
		p    hierarchy.Principal
		want []string
	}{
		// The Owner sees everyone but the Owner organization's users, the
		// deleted reseller's user only because it asks for deleted ones.
		{"owner", principal("owner", hierarchy.RoleOwner), []string{"u-d1", "u-d1r1", "u-d1r1c1", "u-d1r2", "u-d1r2c1",
			"u-d1c1", "u-d2", "u-d2r1", "u-d2r1c1", "u-homeless", "u-unknown", "u-banned"}},
		{"tree-wide service", hierarchy.Principal{Service: true, TreeWide: true}, []string{"u-d1", "u-d1r1", "u-d1r1c1",
			"u-d1r2", "u-d1r2c1", "u-d1c1", "u-d2", "u-d2r1", "u-d2r1c1", "u-homeless", "u-unknown", "u-banned"}},
		// A distributor: its subtree, but not the deleted reseller nor the
		// customer below it (deletion breaks the chain).
		{"d1", principal("d1", hierarchy.RoleDistributor), []string{"u-d1", "u-d1r1", "u-d1r1c1", "u-d1c1"}},
		{"d2", principal("d2", hierarchy.RoleDistributor), []string{"u-d2", "u-d2r1", "u-d2r1c1", "u-banned"}},
		{"d1r1", principal("d1r1", hierarchy.RoleReseller), []string{"u-d1r1", "u-d1r1c1"}},
		{"d2r1c1", principal("d2r1c1", hierarchy.RoleCustomer), []string{"u-d2r1c1", "u-banned"}},
		{"service limited to d2r1", hierarchy.Principal{Service: true, OrgID: "d2r1"}, []string{"u-d2r1", "u-d2r1c1", "u-banned"}},
		{"deleted reseller", principal("d1r2", hierarchy.RoleReseller), nil},
		{"organization the tree does not know", principal("neworg", hierarchy.RoleCustomer), []string{"u-unknown"}},
		{"no role", principal("d1", hierarchy.RoleNone), nil},
		{"no organization", principal("", hierarchy.RoleOwner), nil},
	}
	for _, tc := range cases {
		page := users.List(tc.p, all)
		if got := sorted(ids(page)); !slices.Equal(got, sorted(tc.want)) || page.Total != len(tc.want) {
			t.Errorf("%s sees %v (total %d), want %v", tc.name, got, page.Total, sorted(tc.want))
		}
		for _, id := range append(slices.Clone(tc.want), "u-owner", "u-d1r2", "u-nobody") {
			_, found := users.Find(tc.p, id)
			listed := slices.Contains(tc.want, id)
			deleted := id == "u-d1r2" // deletion is not inherited: d1r2c1 is only hidden from d1
			if found != (listed && !deleted) {
				t.Errorf("%s: Find(%s) = %v, want %v", tc.name, id, found, listed && !deleted)
			}
		}
	}
}

func TestUsersStatusRules(t *testing.T) {
	users := cache.BindUsers(handUsers(), handTree(t))
	owner := principal("owner", hierarchy.RoleOwner)
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	cases := []struct {
		id          string
		suspendedAt time.Time
		suspendedBy string
		deletedAt   time.Time
	}{
		{"u-d1", time.Time{}, "", time.Time{}},
		{"u-d1r1", at(suspendedR), "d1r1", time.Time{}},                            // the home is suspended directly
		{"u-d1r1c1", at(suspendedR), "d1r1", time.Time{}},                          // by cascade from d1r1
		{"u-d1c1", at(suspendedC), "d1c1", time.Time{}},                            // directly
		{"u-banned", time.Date(2025, 1, 2, 6, 0, 0, 0, time.UTC), "", time.Time{}}, // Logto's isSuspended: updatedAt
		{"u-d1r2", time.Time{}, "", at(deletedR)},                                  // the home is soft-deleted
	}
	list := users.List(owner, cache.UserQuery{Status: []string{"enabled", "suspended", "deleted"}, PageSize: 100})
	byID := map[string]cache.User{}
	for _, u := range list.Users {
		byID[u.ID] = u
	}
	for _, tc := range cases {
		u, ok := byID[tc.id]
		if !ok {
			t.Fatalf("%s not listed", tc.id)
		}
		if !u.SuspendedAt.Equal(tc.suspendedAt) || u.SuspendedByOrgID != tc.suspendedBy || !u.DeletedAt.Equal(tc.deletedAt) {
			t.Errorf("%s: suspended %v by %q, deleted %v; want %v by %q, deleted %v", tc.id,
				u.SuspendedAt, u.SuspendedByOrgID, u.DeletedAt, tc.suspendedAt, tc.suspendedBy, tc.deletedAt)
		}
	}
	if o := byID["u-d1r1c1"].Organization; o == nil || o.LogtoID != "d1r1c1" || o.Name != "D1R1C1 Org" ||
		o.Type != hierarchy.TypeCustomer || o.ID != hierarchy.OrgUUID("d1r1c1") {
		t.Errorf("organization of u-d1r1c1: %+v", o)
	}
	if byID["u-homeless"].Organization != nil || byID["u-unknown"].Organization != nil {
		t.Error("a user without a known home has an organization")
	}

	statusIDs := func(status ...string) []string {
		return sorted(ids(users.List(owner, cache.UserQuery{Status: status, PageSize: 100})))
	}
	if got, want := statusIDs("suspended"), sorted([]string{"u-d1r1", "u-d1r1c1", "u-d1c1", "u-banned"}); !slices.Equal(got, want) {
		t.Errorf("status=suspended: %v, want %v", got, want)
	}
	if got, want := statusIDs("DELETED"), []string{"u-d1r2"}; !slices.Equal(got, want) {
		t.Errorf("status=DELETED: %v, want %v", got, want)
	}
	if got, want := statusIDs("enabled", "bogus"), sorted([]string{"u-d1", "u-d1r2c1", "u-d2", "u-d2r1", "u-d2r1c1", "u-homeless", "u-unknown"}); !slices.Equal(got, want) {
		t.Errorf("status=enabled: %v, want %v", got, want)
	}
	if got, want := len(statusIDs()), len(statusIDs("enabled", "suspended")); got != want {
		t.Errorf("no status lists %d users, enabled+suspended %d", got, want)
	}

	// A user reads itself whatever its home, but never once deleted.
	if _, ok := users.Get("u-owner"); !ok {
		t.Error("an Owner-organization user cannot read itself")
	}
	if _, ok := users.Get("u-d1r2"); ok {
		t.Error("a deleted user reads itself")
	}
}

func TestUsersOrganizationFilter(t *testing.T) {
	users := cache.BindUsers(handUsers(), handTree(t))
	list := func(p hierarchy.Principal, orgs ...string) []string {
		return sorted(ids(users.List(p, cache.UserQuery{OrganizationIDs: orgs, PageSize: 100})))
	}
	d1 := principal("d1", hierarchy.RoleDistributor)
	cases := []struct {
		name string
		got  []string
		want []string
	}{
		{"d1 narrows to a customer", list(d1, "d1r1c1"), []string{"u-d1r1c1"}},
		{"d1 intersects with its scope", list(d1, "d1r1c1", "d2r1c1"), []string{"u-d1r1c1"}},
		{"d1 outside its scope", list(d1, "d2r1c1", "d2"), nil},
		{"d1 names its deleted reseller", list(d1, "d1r2"), nil},
		{"invalid ids are dropped", list(d1, "no good", "d1c1"), []string{"u-d1c1"}},
		{"only invalid ids: no filter", list(d1, "bad id!"), []string{"u-d1", "u-d1r1", "u-d1r1c1", "u-d1c1"}},
		{"owner uses them as is", list(principal("owner", hierarchy.RoleOwner), "d2r1c1", "neworg", "owner"), []string{"u-d2r1c1", "u-banned", "u-unknown"}},
		{"a service reads a customer's members", list(hierarchy.Principal{Service: true, TreeWide: true}, "d2r1c1"), []string{"u-d2r1c1", "u-banned"}},
		{"a scoped service outside its organization", list(hierarchy.Principal{Service: true, OrgID: "d2r1c1"}, "d1c1"), nil},
	}
	for _, tc := range cases {
		if !slices.Equal(tc.got, sorted(tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, sorted(tc.want))
		}
	}
}

// The property: on random trees and users, every query answers what a
// plain re-implementation of the rules answers — same total, same page in
// the same order — so no filter, sort or scope can leak or lose a user.
func TestUsersListMatchesReference(t *testing.T) {
	for seed := range uint64(4) {
		records := hierarchytest.RandomRecords(seed, hierarchytest.Messy(3))
		tree := hierarchy.Build(records, hierarchy.Options{})
		var orgIDs []string
		for _, r := range records {
			orgIDs = append(orgIDs, r.ID)
		}
		recs := cache.GenUsers(orgIDs, tree.OwnerID(), 1500, seed)
		users := cache.BindUsers(recs, tree)
		rng := rand.New(rand.NewPCG(seed, 7))
		principals := testPrincipals(tree, orgIDs, rng)
		for range 400 {
			p := principals[rng.IntN(len(principals))]
			q := randomQuery(rng, recs, orgIDs)
			got := users.List(p, q)
			wantIDs, wantTotal := referenceList(recs, tree, p, q)
			if got.Total != wantTotal || !slices.Equal(ids(got), wantIDs) {
				t.Fatalf("seed %d, %+v, %+v:\n got %d %v\nwant %d %v", seed, p, q, got.Total, ids(got), wantTotal, wantIDs)
			}
			for _, u := range got.Users {
				if f, ok := users.Find(p, u.ID); ok != (u.DeletedAt.IsZero()) || (ok && f.ID != u.ID) {
					t.Fatalf("seed %d: %s listed for %+v but Find = %v", seed, u.ID, p, ok)
				}
			}
		}
	}
}

func testPrincipals(tree *hierarchy.Tree, orgIDs []string, rng *rand.Rand) []hierarchy.Principal {
	ps := []hierarchy.Principal{
		principal(tree.OwnerID(), hierarchy.RoleOwner),
		{Service: true, TreeWide: true},
		principal("unknown-org", hierarchy.RoleCustomer),
		principal("", hierarchy.RoleNone),
	}
	roleOf := map[hierarchy.Type]hierarchy.Role{
		hierarchy.TypeDistributor: hierarchy.RoleDistributor, hierarchy.TypeReseller: hierarchy.RoleReseller,
		hierarchy.TypeCustomer: hierarchy.RoleCustomer, hierarchy.TypeOwner: hierarchy.RoleOwner,
	}
	for range 40 {
		id := orgIDs[rng.IntN(len(orgIDs))]
		if o, ok := tree.Org(id); ok {
			ps = append(ps, principal(id, roleOf[o.Type]), hierarchy.Principal{Service: true, OrgID: id})
		}
	}
	return ps
}

func randomQuery(rng *rand.Rand, recs []cache.UserRecord, orgIDs []string) cache.UserQuery {
	var q cache.UserQuery
	some := func(n int) bool { return rng.IntN(n) == 0 }
	if some(3) {
		u := recs[rng.IntN(len(recs))]
		text := u.Name
		if some(2) {
			text = u.Email
		}
		if len(text) > 2 {
			i := rng.IntN(len(text) - 2)
			text = text[i : i+1+rng.IntN(len(text)-i-1)]
		}
		q.Search = strings.ToUpper(text)
		if some(2) {
			q.Search = strings.ToLower(text)
		}
	}
	for _, s := range []string{"enabled", "Suspended", "deleted", "bogus"} {
		if some(3) {
			q.Status = append(q.Status, s)
		}
	}
	for id := range cache.TestRoles {
		if some(6) {
			q.RoleIDs = append(q.RoleIDs, id)
		}
	}
	if some(6) {
		q.RoleIDs = append(q.RoleIDs, "no-such-role")
	}
	if some(5) {
		q.CreatedBy = append(q.CreatedBy, orgIDs[rng.IntN(len(orgIDs))], recs[rng.IntN(len(recs))].ID, "bad id")
	}
	if some(3) {
		for range 1 + rng.IntN(4) {
			q.OrganizationIDs = append(q.OrganizationIDs, orgIDs[rng.IntN(len(orgIDs))])
		}
		if some(3) {
			q.OrganizationIDs = append(q.OrganizationIDs, "bad/id", "unknown00001")
		}
	}
	sorts := []string{"", "name", "email", "username", "created_at", "updated_at", "latest_login_at",
		"organization", "creator_name", "status", "bogus"}
	q.SortBy = sorts[rng.IntN(len(sorts))]
	q.Desc = some(2)
	q.Page = rng.IntN(4)
	q.PageSize = []int{0, 1, 5, 20, 100, 101}[rng.IntN(6)]
	return q
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// referenceList applies the rules of cache.Users the plain way: filter
// everything, sort it, cut the page.
func referenceList(recs []cache.UserRecord, tree *hierarchy.Tree, p hierarchy.Principal, q cache.UserQuery) ([]string, int) {
	scope := tree.Scope(p)
	visibleOrgs := map[string]bool{}
	for id := range scope.LogtoIDs() {
		visibleOrgs[id] = true
	}
	home := func(u *cache.UserRecord) (hierarchy.Org, bool) { return tree.Org(u.HomeOrgID) }
	status := func(u *cache.UserRecord) string {
		o, ok := home(u)
		switch {
		case ok && o.Deleted():
			return "deleted"
		case ok && o.Suspended(), u.Suspended:
			return "suspended"
		}
		return "enabled"
	}
	wantStatus := map[string]bool{}
	for _, s := range q.Status {
		wantStatus[strings.ToLower(s)] = true
	}
	if !wantStatus["enabled"] && !wantStatus["suspended"] && !wantStatus["deleted"] {
		wantStatus = map[string]bool{"enabled": true, "suspended": true}
	}
	valid := func(values []string) map[string]bool {
		m := map[string]bool{}
		for _, v := range values {
			if idPattern.MatchString(v) {
				m[v] = true
			}
		}
		return m
	}
	orgFilter, creators := valid(q.OrganizationIDs), valid(q.CreatedBy)
	search := strings.ToLower(q.Search)

	var match []*cache.UserRecord
	for i := range recs {
		u := &recs[i]
		if u.HomeOrgID != "" && u.HomeOrgID == tree.OwnerID() {
			continue
		}
		if !scope.Everything() && !visibleOrgs[u.HomeOrgID] {
			continue
		}
		if len(orgFilter) > 0 && !orgFilter[u.HomeOrgID] {
			continue
		}
		if !wantStatus[status(u)] {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(u.Name), search) && !strings.Contains(strings.ToLower(u.Email), search) {
			continue
		}
		if len(q.RoleIDs) > 0 && !slices.ContainsFunc(u.Roles, func(r cache.RoleRef) bool { return slices.Contains(q.RoleIDs, r.ID) }) {
			continue
		}
		if len(creators) > 0 {
			byCreator := u.CreatedBy != nil && (creators[u.CreatedBy.UserID] || creators[u.CreatedBy.OrganizationID])
			if !byCreator && !creators[u.CreatedByOrgID] {
				continue
			}
		}
		match = append(match, u)
	}

	// The sort key as (null, text or time); NULLs last ascending.
	type key struct {
		null bool
		text string
		at   time.Time
	}
	keyOf := func(u *cache.UserRecord) key {
		switch q.SortBy {
		case "name":
			return key{text: strings.ToLower(u.Name)}
		case "email":
			return key{text: strings.ToLower(u.Email)}
		case "username":
			return key{text: strings.ToLower(u.Username)}
		case "updated_at":
			return key{at: u.UpdatedAt}
		case "latest_login_at":
			return key{null: u.LastSignInAt.IsZero(), at: u.LastSignInAt}
		case "organization":
			o, ok := home(u)
			return key{null: !ok, text: strings.ToLower(o.Name)}
		case "creator_name":
			if u.CreatedBy == nil {
				return key{null: true}
			}
			return key{text: strings.ToLower(u.CreatedBy.Name)}
		case "status":
			if o, ok := home(u); ok && o.Suspended() {
				return key{at: o.SuspendedAt}
			}
			if u.Suspended {
				return key{at: u.UpdatedAt}
			}
			return key{null: true}
		}
		return key{at: u.CreatedAt}
	}
	desc := q.Desc
	switch q.SortBy {
	case "name", "email", "username", "created_at", "updated_at", "latest_login_at", "organization", "creator_name", "status":
	default:
		desc = true
	}
	slices.SortFunc(match, func(a, b *cache.UserRecord) int {
		ka, kb := keyOf(a), keyOf(b)
		c := 0
		switch {
		case ka.null != kb.null:
			c = 1
			if kb.null {
				c = -1
			}
		case ka.null:
		default:
			c = cmp.Or(strings.Compare(ka.text, kb.text), ka.at.Compare(kb.at))
		}
		c = cmp.Or(c, strings.Compare(a.ID, b.ID))
		if desc {
			c = -c
		}
		return c
	})

	page, size := max(q.Page, 1), q.PageSize
	if size < 1 || size > 100 {
		size = 20
	}
	var out []string
	for i := (page - 1) * size; i < len(match) && i < page*size; i++ {
		out = append(out, match[i].ID)
	}
	return out, len(match)
}
