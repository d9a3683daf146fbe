package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The randomized tenant-isolation test, at the HTTP level. Where
// orgs_property_test.go checks the organization routes against the tree's
// own CanSee for sessions of well-formed members, this test complements it
// with an independent model of visibility written from the README's rules
// (visibility parents one level up, deletion breaking the chain, the Owner
// and tree-wide services seeing everything, an organization unknown to the
// tree seeing itself), random personas of both kinds of token — sessions
// of random organizations (deleted, unknown, the Owner's) with random roles
// and permissions, service tokens with a random organization_id or none —
// and every route and filter, the user routes included. It counts what
// leaked: organizations and users served to someone outside their scope,
// and detail answers that tell an invisible id from a missing one. The
// count must be zero.

// visibility is the model: who may see which organization, and whose
// users, from the tree's organizations and the simulator's users.
type visibility struct {
	tree  *hierarchy.Tree
	homes map[string]string // user id → home organization ("" for none)
}

// everything reports whether p sees every organization and every user.
func (v *visibility) everything(p hierarchy.Principal) bool {
	switch {
	case p.Service && p.TreeWide:
		return true
	case p.OrgID == "" || (!p.Service && p.Role == hierarchy.RoleNone):
		return false
	}
	return p.OrgID == v.tree.OwnerID()
}

// sees reports whether p may see organization id: the principal's own
// organization (unless soft-deleted), and whatever reaches it by walking
// visibility parents up.
func (v *visibility) sees(p hierarchy.Principal, id string) bool {
	if v.everything(p) {
		return true
	}
	if p.OrgID == "" || (!p.Service && p.Role == hierarchy.RoleNone) {
		return false
	}
	root, known := v.tree.Org(p.OrgID)
	switch {
	case !known:
		return id == p.OrgID
	case root.Deleted():
		return false
	}
	for range 4 {
		if id == p.OrgID {
			return true
		}
		parent, ok := v.parent(id)
		if !ok {
			return false
		}
		id = parent
	}
	return false
}

// parent is an organization's visibility parent: its createdBy when that
// names an organization one level up that is not soft-deleted.
func (v *visibility) parent(id string) (string, bool) {
	o, ok := v.tree.Org(id)
	if !ok || o.ParentID == "" {
		return "", false
	}
	p, ok := v.tree.Org(o.ParentID)
	if !ok || p.Deleted() {
		return "", false
	}
	oneUp := o.Type == hierarchy.TypeDistributor && p.Type == hierarchy.TypeOwner ||
		o.Type == hierarchy.TypeReseller && p.Type == hierarchy.TypeDistributor ||
		o.Type == hierarchy.TypeCustomer && (p.Type == hierarchy.TypeReseller || p.Type == hierarchy.TypeDistributor)
	return p.LogtoID, oneUp
}

// listsUser reports whether p may be served user u in a list: u's home is
// not the Owner organization (whose users are never listed), and p sees
// everything, or sees u's home and it is not soft-deleted.
func (v *visibility) listsUser(p hierarchy.Principal, userID string) bool {
	home, known := v.homes[userID]
	if !known || home == v.tree.OwnerID() && home != "" {
		return false
	}
	if v.everything(p) {
		return true
	}
	o, inTree := v.tree.Org(home)
	return home != "" && home != v.tree.OwnerID() && v.sees(p, home) && !(inTree && o.Deleted())
}

// homesOf reads each user's home organization from the simulator, as the
// README says it is found: customData.organizationId, else the first
// membership.
func homesOf(t testing.TB, sim *logtotest.Server, users []string) map[string]string {
	t.Helper()
	homes := map[string]string{}
	for _, id := range users {
		u, ok := sim.User(id)
		if !ok {
			t.Fatalf("no user %s", id)
		}
		var cd struct {
			OrganizationID any `json:"organizationId"`
		}
		_ = json.Unmarshal(u.CustomData, &cd)
		if s, ok := cd.OrganizationID.(string); ok && s != "" {
			homes[id] = s
			continue
		}
		orgs, err := sim.UserOrganizations(id)
		if err != nil {
			t.Fatal(err)
		}
		homes[id] = ""
		if len(orgs) > 0 {
			homes[id] = orgs[0].ID
		}
	}
	return homes
}

// persona is a random caller: its token and what it should be.
type persona struct {
	name  string
	token string
	p     hierarchy.Principal
}

// readPerms are the permissions the read routes are gated on.
var readPerms = []string{hierarchy.PermReadCustomers, hierarchy.PermReadResellers, hierarchy.PermReadDistributors, hierarchy.PermReadUsers}

// randomPersonas draws n callers: sessions of random organizations (from
// orgs, which should include soft-deleted ones, the Owner and ids unknown
// to the tree) with a random role and random permissions, and service
// tokens limited to a random organization or tree-wide, with random scopes.
func randomPersonas(t testing.TB, h *harness, rng *rand.Rand, orgs []string, n int) []persona {
	t.Helper()
	var out []persona
	for i := range n {
		org := orgs[rng.IntN(len(orgs))]
		var perms []string
		for _, perm := range readPerms {
			if rng.IntN(3) > 0 {
				perms = append(perms, perm)
			}
		}
		if i%3 == 2 {
			if rng.IntN(4) == 0 {
				org = ""
			}
			tok, err := h.sim.IssueUserToken(h.fixture.Users["d1"], logtotest.UserTokenOptions{
				Resource: h.fixture.APIResource.Indicator, OrganizationID: org, Scopes: perms})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, persona{name: fmt.Sprintf("service of %q %v", org, perms), token: tok,
				p: hierarchy.Principal{Service: true, OrgID: org, TreeWide: org == "", Permissions: perms}})
			continue
		}
		role := hierarchy.Role(rng.IntN(int(hierarchy.RoleCustomer) + 1))
		userID := fmt.Sprintf("persona%d", i)
		u := SessionUser{ID: UserUUID(userID), LogtoID: &userID, Username: userID, Email: userID + "@example.test", Name: userID,
			OrgRole: role.String(), OrgPermissions: perms, OrganizationID: org, OrganizationName: org}
		tok, _, err := h.sessions.MintAccess(u)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, persona{name: fmt.Sprintf("session of %q as %q %v", org, role, perms), token: tok, p: u.Principal()})
	}
	return out
}

// leaks counts what the isolation test found.
type leaks struct {
	requests, orgsServed, usersServed int
	found                             []string
}

func (l *leaks) add(format string, args ...any) {
	l.found = append(l.found, fmt.Sprintf(format, args...))
}

// isolationRoute is a list route, its data key and the level it lists (0
// for the picker).
type isolationRoute struct {
	path, key string
	typ       hierarchy.Type
}

var isolationOrgRoutes = []isolationRoute{
	{"/api/customers", "customers", hierarchy.TypeCustomer},
	{"/api/resellers", "resellers", hierarchy.TypeReseller},
	{"/api/distributors", "distributors", hierarchy.TypeDistributor},
	{"/api/organizations", "organizations", 0},
}

// checkIsolation reads every list route with every filter, every page, as
// each persona, and a sample of details, and records every leak.
func checkIsolation(t *testing.T, h *harness, v *visibility, orgs, users []string, personas []persona, rng *rand.Rand) *leaks {
	t.Helper()
	l := &leaks{}
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	for _, ps := range personas {
		for _, route := range isolationOrgRoutes {
			for qi, q := range orgQueries(v, orgs, pick) {
				served := walk(t, h, l, ps.token, route.path, route.key, q)
				for _, id := range served {
					l.orgsServed++
					o, ok := v.tree.Org(id)
					if !ok || !v.sees(ps.p, id) || (route.typ != 0 && o.Type != route.typ) {
						l.add("%s: %s?%s served organization %s", ps.name, route.path, q, id)
					}
				}
				// The model and the service must also agree on what is
				// visible: every status, or the picker's plain list.
				if served != nil && (qi == 1 && route.typ != 0 || qi == 0 && route.typ == 0) {
					var want []string
					for _, id := range orgs {
						o, ok := v.tree.Org(id)
						if ok && v.sees(ps.p, id) && (o.Type == route.typ || route.typ == 0 && o.Type != hierarchy.TypeOwner && !o.Deleted()) {
							want = append(want, id)
						}
					}
					if !sameSet(served, want) {
						t.Errorf("%s: %s?%s served %d organizations, the model says %d", ps.name, route.path, q, len(served), len(want))
					}
				}
			}
		}
		for qi, q := range userQueries(v, orgs, users, pick) {
			served := walk(t, h, l, ps.token, "/api/users", "users", q)
			for _, id := range served {
				l.usersServed++
				if !v.listsUser(ps.p, id) {
					l.add("%s: /api/users?%s served user %s (home %q)", ps.name, q, id, v.homes[id])
				}
			}
			if served != nil && qi == 1 {
				var want []string
				for _, id := range users {
					if v.listsUser(ps.p, id) {
						want = append(want, id)
					}
				}
				if !sameSet(served, want) {
					t.Errorf("%s: /api/users?%s served %d users, the model says %d: %v", ps.name, q, len(served), len(want), symmetricDiff(served, want, v.homes))
				}
			}
		}
		checkDetails(t, h, v, l, ps, orgs, users, rng)
	}
	return l
}

// orgQueries are the filters of the organization routes, with random
// values: statuses, search, sort, the organization and creator filters,
// the picker's type, name and description.
func orgQueries(v *visibility, orgs []string, pick func([]string) string) []string {
	org := func() hierarchy.Org { o, _ := v.tree.Org(pick(orgs)); return o }
	term := func() string {
		name := org().Name
		if len(name) > 3 {
			name = name[1:3]
		}
		return url.QueryEscape(name)
	}
	creator := func() string {
		if c := org().Creator; c != nil {
			return c.UserID
		}
		return pick(orgs)
	}
	return []string{
		"",
		"status=enabled&status=suspended&status=deleted",
		"status=deleted",
		"status=suspended&sort_by=suspended_at&sort_direction=desc",
		"search=" + term(),
		"search=" + term() + "&status=deleted&status=enabled",
		"organization_id=" + url.QueryEscape(pick(orgs)),
		"organization_id=" + url.QueryEscape(pick(orgs)) + "&organization_id=" + url.QueryEscape(pick(orgs)) + "&include_hierarchy=true&status=deleted&status=enabled&status=suspended",
		"created_by=" + url.QueryEscape(creator()),
		"type=" + []string{"distributor", "reseller", "customer", "owner", "bogus"}[len(orgs)%5],
		"name=" + url.QueryEscape(org().Name) + "&description=" + url.QueryEscape(org().Description),
		"sort_by=creator_name&sort_direction=desc",
	}
}

// userQueries are the filters of the user list, with random values.
func userQueries(v *visibility, orgs, users []string, pick func([]string) string) []string {
	return []string{
		"",
		"status=enabled&status=suspended&status=deleted",
		"search=" + url.QueryEscape(strings.ToLower(pick(users))[:2]),
		"organization_id=" + url.QueryEscape(pick(orgs)) + "&status=enabled&status=suspended&status=deleted",
		"organization_id=" + url.QueryEscape(v.homes[pick(users)]) + "&organization_id=" + url.QueryEscape(pick(orgs)),
		"created_by=" + url.QueryEscape(pick(orgs)),
		"role=" + url.QueryEscape(pick(users)) + "&sort_by=organization&sort_direction=desc",
		"sort_by=email&status=deleted",
	}
}

// walk reads every page of a list (page_size 100) and returns the Logto
// ids served; nil when the route is refused (403). Anything but 200 or 403
// is a failure.
func walk(t *testing.T, h *harness, l *leaks, token, path, key, query string) []string {
	t.Helper()
	var served []string
	for page := 1; page <= 50; page++ {
		r := h.do(t, http.MethodGet, fmt.Sprintf("%s?page_size=100&page=%d&%s", path, page, query), token, nil)
		l.requests++
		switch r.Status {
		case http.StatusForbidden:
			return nil
		case http.StatusOK:
		default:
			t.Fatalf("%s?%s: %d %s", path, query, r.Status, r.Body)
		}
		list := decodeList(t, r, key)
		served = append(served, ids(t, list.items)...)
		if !list.pagination.HasNext {
			return served
		}
	}
	t.Fatalf("%s?%s: more than 50 pages", path, query)
	return nil
}

// checkDetails reads a sample of organization and user details as ps: a
// 200 must be visible, and what is not visible must be answered exactly as
// an id that exists nowhere.
func checkDetails(t *testing.T, h *harness, v *visibility, l *leaks, ps persona, orgs, users []string, rng *rand.Rand) {
	t.Helper()
	answer := func(path string) string {
		r := h.do(t, http.MethodGet, path, ps.token, nil)
		l.requests++
		if r.Status >= 500 {
			t.Fatalf("%s as %s: %d %s", path, ps.name, r.Status, r.Body)
		}
		return fmt.Sprintf("%d %s", r.Status, r.Env.Message)
	}
	for _, route := range isolationOrgRoutes[:3] {
		missing := answer(route.path + "/nosuchorg000")
		for range 8 {
			id := orgs[rng.IntN(len(orgs))]
			got := answer(route.path + "/" + url.PathEscape(id))
			o, known := v.tree.Org(id)
			visible := known && v.sees(ps.p, id) && !o.Deleted() && o.Type == route.typ
			switch {
			case strings.HasPrefix(got, "200 ") && !visible:
				l.add("%s: %s/%s answered %s", ps.name, route.path, id, got)
			case !visible && got != missing && id != ps.p.OrgID:
				l.add("%s: %s/%s answered %q, a missing id %q: existence leaks", ps.name, route.path, id, got, missing)
			}
		}
	}
	missing := answer("/api/users/nosuchuser00")
	for range 8 {
		id := users[rng.IntN(len(users))]
		got := answer("/api/users/" + url.PathEscape(id))
		visible := v.listsUser(ps.p, id)
		switch {
		case strings.HasPrefix(got, "200 ") && !visible:
			l.add("%s: /api/users/%s answered %s (home %q)", ps.name, id, got, v.homes[id])
		case !visible && got != missing:
			l.add("%s: /api/users/%s answered %q, a missing id %q: existence leaks", ps.name, id, got, missing)
		}
	}
}

// report fails the test on any leak and logs the figures.
func (l *leaks) report(t *testing.T, personas int) {
	t.Helper()
	t.Logf("%d personas, %d requests: %d organizations and %d users served, %d leaks", personas, l.requests, l.orgsServed, l.usersServed, len(l.found))
	for i, f := range l.found {
		if i == 20 {
			t.Errorf("… and %d more", len(l.found)-20)
			break
		}
		t.Error(f)
	}
	if l.orgsServed == 0 || l.usersServed == 0 {
		t.Error("nothing was served: the test proved nothing")
	}
}

// TestTenantIsolationOnMessySimulatorTrees runs the isolation check on
// simulator trees with users, salted with what real data holds: orphans,
// organizations linked at the wrong level or of an unknown type, a
// createdBy cycle, a soft-deleted subtree, and users whose home is
// soft-deleted, hard-deleted, the Owner's, or only a membership.
func TestTenantIsolationOnMessySimulatorTrees(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{})
			rng := rand.New(rand.NewPCG(seed, 0x150))
			users := seedMessyTenant(t, h, seed)
			refreshUsers(t, h)
			tree := h.tree(t)
			v := &visibility{tree: tree, homes: homesOf(t, h.sim, users)}
			orgs := append(allIDs(tree), "not-in-the-tree")
			personas := randomPersonas(t, h, rng, orgs, 30)
			checkIsolation(t, h, v, orgs, users, personas, rng).report(t, len(personas))
		})
	}
}

// TestTenantIsolationOnRandomMessyTrees runs it on the generated trees
// that hold every kind of bad data the domain repairs (hierarchytest's
// messy shape, malformed customData and duplicate ids included). Their
// users are the fixture's, whose homes the tree does not know; personas
// of those organizations see exactly their own users.
func TestTenantIsolationOnRandomMessyTrees(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			records := hierarchytest.RandomRecords(seed+40, hierarchytest.Messy(1))
			h := newHarness(t, harnessOptions{View: func(c *cache.HierarchyConfig) {
				c.Source = func(context.Context) ([]hierarchy.Record, error) { return records, nil }
			}})
			rng := rand.New(rand.NewPCG(seed, 0x151))
			tree := h.tree(t)
			users := slices.Collect(func(yield func(string) bool) {
				for _, id := range h.fixture.Users {
					if !yield(id) {
						return
					}
				}
			})
			v := &visibility{tree: tree, homes: homesOf(t, h.sim, users)}
			orgs := append(allIDs(tree), h.fixture.Orgs["d1"], h.fixture.Orgs["d1r1"], h.fixture.Orgs["d2r1c1"])
			personas := randomPersonas(t, h, rng, orgs, 30)
			checkIsolation(t, h, v, orgs, users, personas, rng).report(t, len(personas))
		})
	}
}

// seedMessyTenant adds a bulk tree with users and the messy cases to the
// harness's simulator, and returns every user id.
func seedMessyTenant(t testing.TB, h *harness, seed uint64) []string {
	t.Helper()
	bulk, err := h.sim.SeedBulk(logtotest.BulkOptions{Distributors: 3, ResellersPerDistributor: 2, CustomersPerReseller: 3,
		CustomersPerDistributor: 1, UsersPerOrganization: 1, SuspendedRatio: 0.15, DeletedRatio: 0.15, RebrandingRatio: 0.1, Seed: seed + 1})
	if err != nil {
		t.Fatal(err)
	}
	users := slices.Clone(bulk.Users)
	for _, id := range h.fixture.Users {
		users = append(users, id)
	}
	create := func(name string, customData map[string]any) string {
		t.Helper()
		fields := map[string]any{"name": name}
		if customData != nil {
			fields["customData"] = customData
		}
		o, err := h.sim.CreateOrganization(fields)
		if err != nil {
			t.Fatal(err)
		}
		return o.ID
	}
	owner := bulk.OwnerID
	r0, r1, c0 := bulk.Resellers[0], bulk.Resellers[1], bulk.Customers[0]
	orphan := create("Messy Orphan", map[string]any{"type": "customer", "createdBy": "no-such-org"})
	wrongR := create("Messy Reseller Under Reseller", map[string]any{"type": "reseller", "createdBy": r0})
	wrongC := create("Messy Customer Under Customer", map[string]any{"type": "customer", "createdBy": c0})
	partner := create("Messy Partner", map[string]any{"type": "partner", "createdBy": r1})
	bare := create("Messy Bare", nil)
	cycleA := create("Messy Cycle A", map[string]any{"type": "customer"})
	cycleB := create("Messy Cycle B", map[string]any{"type": "customer", "createdBy": cycleA})
	if _, err := h.sim.UpdateOrganization(cycleA, map[string]any{"customData": map[string]any{"type": "customer", "createdBy": cycleB}}); err != nil {
		t.Fatal(err)
	}
	deletedD := create("Messy Deleted Distributor", map[string]any{"type": "distributor", "createdBy": owner, "deletedAt": "2024-05-01T00:00:00Z"})
	underD := create("Messy Under Deleted", map[string]any{"type": "reseller", "createdBy": deletedD})
	underR := create("Messy Customer Under Deleted", map[string]any{"type": "customer", "createdBy": underD})
	gone := create("Messy Gone", map[string]any{"type": "customer", "createdBy": r0})

	homes := []string{orphan, wrongR, wrongC, partner, bare, cycleA, cycleB, deletedD, underD, underR, gone, owner, r0}
	for i, home := range homes {
		u, err := h.sim.CreateUser(map[string]any{"username": fmt.Sprintf("messy_%d", i), "primaryEmail": fmt.Sprintf("messy%d@example.test", i),
			"name": fmt.Sprintf("Messy %d", i), "customData": map[string]any{"organizationId": home}})
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u.ID)
	}
	if err := h.sim.DeleteOrganization(gone); err != nil { // its users' home is now unknown
		t.Fatal(err)
	}
	for i, org := range []string{r1, underD, ""} { // homes from memberships only, or none
		u, err := h.sim.CreateUser(map[string]any{"username": fmt.Sprintf("member_%d", i), "name": fmt.Sprintf("Member %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if org != "" {
			if err := h.sim.AddOrganizationMembers(org, u.ID); err != nil {
				t.Fatal(err)
			}
		}
		users = append(users, u.ID)
	}
	return users
}

// symmetricDiff describes what differs between served and want, for a
// failure message.
func symmetricDiff(served, want []string, homes map[string]string) string {
	var b strings.Builder
	for _, id := range served {
		if !slices.Contains(want, id) {
			fmt.Fprintf(&b, " +%s(home %q)", id, homes[id])
		}
	}
	for _, id := range want {
		if !slices.Contains(served, id) {
			fmt.Fprintf(&b, " -%s(home %q)", id, homes[id])
		}
	}
	return b.String()
}
