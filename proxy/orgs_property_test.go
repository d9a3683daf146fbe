package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// roleReads are the organization permissions of each role (upstream §2.12).
var roleReads = map[hierarchy.Role][]string{
	hierarchy.RoleOwner:       {hierarchy.PermReadCustomers, hierarchy.PermReadResellers, hierarchy.PermReadDistributors},
	hierarchy.RoleDistributor: {hierarchy.PermReadCustomers, hierarchy.PermReadResellers},
	hierarchy.RoleReseller:    {hierarchy.PermReadCustomers},
}

// roleOf is the organization role a member of an organization of type typ
// holds.
func roleOf(typ hierarchy.Type) hierarchy.Role {
	switch typ {
	case hierarchy.TypeOwner:
		return hierarchy.RoleOwner
	case hierarchy.TypeDistributor:
		return hierarchy.RoleDistributor
	case hierarchy.TypeReseller:
		return hierarchy.RoleReseller
	case hierarchy.TypeCustomer:
		return hierarchy.RoleCustomer
	}
	return hierarchy.RoleNone
}

// sessionFor mints a session for a member of orgID holding role, with the
// role's permissions, as the login exchange would.
func sessionFor(t *testing.T, h *harness, orgID string, role hierarchy.Role) (string, hierarchy.Principal) {
	t.Helper()
	userID := "user-of-" + orgID
	u := SessionUser{
		ID: UserUUID(userID), LogtoID: &userID, Username: userID, Email: userID + "@example.test", Name: userID,
		OrgRole: role.String(), OrgPermissions: roleReads[role], OrganizationID: orgID, OrganizationName: orgID,
	}
	tok, _, err := h.sessions.MintAccess(u)
	if err != nil {
		t.Fatal(err)
	}
	return tok, u.Principal()
}

// orgRoute is a list route and the level it lists (0: the picker).
type orgRoute struct {
	path, key, perm string
	typ             hierarchy.Type
}

var orgRoutes = []orgRoute{
	{"/api/customers", "customers", hierarchy.PermReadCustomers, hierarchy.TypeCustomer},
	{"/api/resellers", "resellers", hierarchy.PermReadResellers, hierarchy.TypeReseller},
	{"/api/distributors", "distributors", hierarchy.PermReadDistributors, hierarchy.TypeDistributor},
	{"/api/organizations", "organizations", "", 0},
}

// checkScopedReads reads every page of every list route (plain, with all
// statuses, searched, filtered, sorted) and a sample of detail routes as p,
// and checks every organization served against the tree's scope: nothing
// outside it is ever served, an unfiltered list serves all of it, and pages
// partition their result.
func checkScopedReads(t *testing.T, h *harness, tree *hierarchy.Tree, all []string, tok string, p hierarchy.Principal, rng *rand.Rand) {
	t.Helper()
	pick := func() string { return all[rng.IntN(len(all))] }
	for _, route := range orgRoutes {
		queries := []string{"", "status=enabled&status=suspended&status=deleted", "search=" + url.QueryEscape(searchTerm(tree, pick())),
			"sort_by=name&sort_direction=desc", "organization_id=" + pick() + "&organization_id=" + pick() + "&include_hierarchy=true",
			"created_by=" + creatorOf(tree, pick()), "type=customer", "search=e&status=suspended"}
		for qi, q := range queries {
			served := walkPages(t, h, tok, route, q)
			if served == nil {
				if route.perm == "" || p.Has(route.perm) {
					t.Fatalf("%s?%s refused for %+v", route.path, q, p)
				}
				break // refused as it should be; the other queries are too
			}
			for _, id := range served {
				o, ok := tree.Org(id)
				switch {
				case !ok || !tree.CanSee(p, id):
					t.Fatalf("%s?%s served %s outside the scope of %+v", route.path, q, id, p)
				case route.typ != 0 && o.Type != route.typ,
					route.typ == 0 && (o.Type == hierarchy.TypeOwner || o.Deleted()):
					t.Fatalf("%s?%s served %s of type %v (deleted %v)", route.path, q, id, o.Type, o.Deleted())
				}
			}
			if qi > 1 && route.typ != 0 || qi > 0 && route.typ == 0 {
				continue
			}
			var want []string
			for _, id := range all {
				o, known := tree.Org(id)
				in := known && tree.CanSee(p, id) && (route.typ == 0 && o.Type != hierarchy.TypeOwner || o.Type == route.typ)
				if in && (qi == 1 || !o.Deleted()) {
					want = append(want, id)
				}
			}
			if !sameSet(served, want) {
				t.Fatalf("%s?%s for %+v served %d organizations, the scope holds %d", route.path, q, p, len(served), len(want))
			}
		}
	}
	for _, route := range orgRoutes[:3] {
		for range 8 {
			id := pick()
			r := h.do(t, http.MethodGet, route.path+"/"+url.PathEscape(id), tok, nil)
			o, known := tree.Org(id)
			want := http.StatusNotFound
			switch {
			case !p.Has(route.perm) && id != p.OrgID:
				want = http.StatusForbidden
			case known && tree.CanSee(p, id) && !o.Deleted() && o.Type == route.typ:
				want = http.StatusOK
			}
			if r.Status != want {
				t.Fatalf("%s/%s for %+v: %d %s, want %d", route.path, id, p, r.Status, r.Body, want)
			}
		}
	}
}

// walkPages reads every page of a list (7 per page) and returns the ids
// served, in order; nil when the route was refused (403).
func walkPages(t *testing.T, h *harness, tok string, route orgRoute, query string) []string {
	t.Helper()
	served := []string{}
	for page := 1; ; page++ {
		path := fmt.Sprintf("%s?page_size=7&page=%d&%s", route.path, page, query)
		r := h.do(t, http.MethodGet, path, tok, nil)
		if r.Status == http.StatusForbidden {
			return nil
		}
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		l := decodeList(t, r, route.key)
		served = append(served, ids(t, l.items)...)
		pg := l.pagination
		if pg.Page != page || pg.PageSize != 7 || pg.TotalPages != (pg.TotalCount+6)/7 || len(l.items) > 7 {
			t.Fatalf("%s: pagination %+v with %d items", path, pg, len(l.items))
		}
		if !pg.HasNext {
			if len(served) != pg.TotalCount {
				t.Fatalf("%s: pages served %d organizations, total_count %d", path, len(served), pg.TotalCount)
			}
			if dup := len(served) - len(slices.Compact(slices.Sorted(slices.Values(served)))); dup != 0 {
				t.Fatalf("%s: %d organizations served twice", path, dup)
			}
			return served
		}
	}
}

// searchTerm is a piece of an organization's name, something to search for.
func searchTerm(tree *hierarchy.Tree, id string) string {
	o, _ := tree.Org(id)
	if len(o.Name) < 3 {
		return o.Name
	}
	return o.Name[1:3]
}

// creatorOf is an organization's creator's user id, or its own id.
func creatorOf(tree *hierarchy.Tree, id string) string {
	if o, _ := tree.Org(id); o.Creator != nil {
		return o.Creator.UserID
	}
	return id
}

// principalsToCheck picks the sessions a tree is checked as: every
// organization that is not a customer, a sample of customers, a session of
// an organization unknown to the tree and one without an organization role.
func principalsToCheck(tree *hierarchy.Tree, all []string, customers int) []struct {
	org  string
	role hierarchy.Role
} {
	var out []struct {
		org  string
		role hierarchy.Role
	}
	for _, id := range all {
		o, _ := tree.Org(id)
		if o.Type == hierarchy.TypeCustomer {
			if customers == 0 {
				continue
			}
			customers--
		}
		out = append(out, struct {
			org  string
			role hierarchy.Role
		}{id, roleOf(o.Type)})
	}
	return append(out,
		struct {
			org  string
			role hierarchy.Role
		}{"not-in-the-tree", hierarchy.RoleReseller},
		struct {
			org  string
			role hierarchy.Role
		}{tree.OwnerID(), hierarchy.RoleNone})
}

// allIDs lists the Logto ids of a tree's organizations (the owner's
// listing with every status, plus the owner itself).
func allIDs(tree *hierarchy.Tree) []string {
	owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
	out := []string{tree.OwnerID()}
	for _, typ := range []hierarchy.Type{hierarchy.TypeDistributor, hierarchy.TypeReseller, hierarchy.TypeCustomer} {
		for page := 1; ; page++ {
			pg := tree.List(owner, typ, hierarchy.Query{Status: []string{"enabled", "suspended", "deleted"}, Page: page, PageSize: 100})
			for _, o := range pg.Orgs {
				out = append(out, o.LogtoID)
			}
			if page*100 >= pg.Total {
				break
			}
		}
	}
	return out
}

func TestOrgReadsNeverLeaveTheScopeOnABulkTree(t *testing.T) {
	h := newHarness(t, harnessOptions{Bulk: &logtotest.BulkOptions{
		Distributors: 3, ResellersPerDistributor: 3, CustomersPerReseller: 4, CustomersPerDistributor: 2,
		SuspendedRatio: 0.1, DeletedRatio: 0.1, RebrandingRatio: 0.1, Seed: 3,
	}})
	tree := h.tree(t)
	all := allIDs(tree)
	if len(all) < 60 {
		t.Fatalf("the tree has %d organizations", len(all))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range principalsToCheck(tree, all, 6) {
		tok, p := sessionFor(t, h, s.org, s.role)
		checkScopedReads(t, h, tree, all, tok, p, rng)
	}
}

func TestOrgReadsNeverLeaveTheScopeOnRandomTrees(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			records := hierarchytest.RandomRecords(seed, hierarchytest.Messy(1))
			h := newHarness(t, harnessOptions{View: func(c *cache.HierarchyConfig) {
				c.Source = func(context.Context) ([]hierarchy.Record, error) { return records, nil }
			}})
			tree := h.tree(t)
			all := append(allIDs(tree), "..", "%00", "x/y")
			rng := rand.New(rand.NewPCG(seed, 99))
			for _, s := range principalsToCheck(tree, all[:len(all)-3], 8) {
				tok, p := sessionFor(t, h, s.org, s.role)
				checkScopedReads(t, h, tree, all, tok, p, rng)
			}
		})
	}
}
