package hierarchy_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func TestListScopePerEntity(t *testing.T) {
	tree := hierarchy.Build(fixture(), hierarchy.Options{})
	tests := []struct {
		p    hierarchy.Principal
		typ  hierarchy.Type
		want []string
	}{
		{principal("own", hierarchy.RoleOwner), hierarchy.TypeCustomer, []string{"c1", "c2", "c3", "c4", "c5"}},
		{principal("own", hierarchy.RoleOwner), hierarchy.TypeReseller, []string{"r1", "r3"}},
		{principal("own", hierarchy.RoleOwner), hierarchy.TypeDistributor, []string{"d1", "d2"}},
		{principal("d1", hierarchy.RoleDistributor), hierarchy.TypeCustomer, []string{"c1", "c2", "c4"}},
		{principal("d1", hierarchy.RoleDistributor), hierarchy.TypeReseller, []string{"r1"}},
		{principal("d1", hierarchy.RoleDistributor), hierarchy.TypeDistributor, []string{"d1"}},
		{principal("r1", hierarchy.RoleReseller), hierarchy.TypeCustomer, []string{"c1", "c2"}},
		{principal("r1", hierarchy.RoleReseller), hierarchy.TypeReseller, []string{"r1"}},
		{principal("c1", hierarchy.RoleCustomer), hierarchy.TypeCustomer, []string{"c1"}},
		{principal("c1", hierarchy.RoleCustomer), hierarchy.TypeReseller, nil},
		{principal("new", hierarchy.RoleDistributor), hierarchy.TypeCustomer, nil},
		{principal("own", hierarchy.RoleOwner), hierarchy.TypeOwner, nil},
		{principal("own", hierarchy.RoleOwner), hierarchy.Type(99), nil},
	}
	for _, tt := range tests {
		p := tree.List(tt.p, tt.typ, hierarchy.Query{})
		if !sameSet(ids(p), tt.want) || p.Total != len(tt.want) {
			t.Errorf("%s lists %v: %v (total %d), want %v", tt.p.OrgID, tt.typ, ids(p), p.Total, tt.want)
		}
	}
}

func TestListStatus(t *testing.T) {
	recs := []hierarchy.Record{
		owner(),
		rec("d", "D", "distributor", "own", cd{"suspendedAt": ts(1)}),
		rec("r", "R", "reseller", "d", nil), // cascade-suspended
		rec("e", "E", "distributor", "own", nil),
		rec("f", "F", "distributor", "own", cd{"deletedAt": ts(1)}),
		rec("g", "G", "distributor", "own", cd{"deletedAt": ts(1), "suspendedAt": ts(1)}),
	}
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	tests := []struct {
		status []string
		want   []string
	}{
		{nil, []string{"d", "e"}},
		{[]string{"enabled"}, []string{"e"}},
		{[]string{"SUSPENDED"}, []string{"d"}},
		{[]string{"deleted"}, []string{"f", "g"}},
		{[]string{"enabled", "deleted"}, []string{"e", "f", "g"}},
		{[]string{"enabled", "suspended", "deleted", "enabled"}, []string{"d", "e", "f", "g"}},
		{[]string{"bogus"}, []string{"d", "e"}},
		{[]string{"bogus", "enabled"}, []string{"e"}},
	}
	for _, tt := range tests {
		if got := ids(tree.List(own, hierarchy.TypeDistributor, hierarchy.Query{Status: tt.status})); !sameSet(got, tt.want) {
			t.Errorf("status %v = %v, want %v", tt.status, got, tt.want)
		}
	}
	// A cascade-suspended organization is suspended.
	if got := ids(tree.List(own, hierarchy.TypeReseller, hierarchy.Query{Status: []string{"suspended"}})); !slices.Equal(got, []string{"r"}) {
		t.Errorf("cascade-suspended resellers = %v", got)
	}
}

func TestListSearch(t *testing.T) {
	recs := []hierarchy.Record{
		owner(),
		rec("d", "Zeta Müller", "distributor", "own", cd{
			"city": "Pesaro", "employees": 1234, "tags": []string{"Gold"}, "active": true,
			"createdByUser": cd{"name": "Alice Creator", "user_id": "u1"},
		}),
		rec("e", "Alpha", "distributor", "own", cd{"notes": nil}),
	}
	recs[1].Description = "Cloud PBX"
	recs[2].Description = "ab"
	recs[2].Name = "xy"
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	tests := []struct {
		search string
		want   []string
	}{
		{"zeta", []string{"d"}},
		{"MÜLLER", []string{"d"}},
		{"pbx", []string{"d"}},
		{"pesaro", []string{"d"}},
		{"234", []string{"d"}},              // numbers as text
		{`["gold"]`, []string{"d"}},         // arrays as their JSON text
		{"true", []string{"d"}},             // booleans as text
		{"distributor", []string{"d", "e"}}, // type is searchable
		{"own", nil},                        // createdBy is not
		{"alice", nil},                      // createdByUser is not
		{"null", nil},                       // null has no text
		{"yab", nil},                        // no match across fields
		{"y\x00a", nil},                     // nor through the separator
		{"", []string{"d", "e"}},            // empty search filters nothing
		{"%", nil},                          // LIKE wildcards are literal
	}
	for _, tt := range tests {
		got := tree.List(own, hierarchy.TypeDistributor, hierarchy.Query{Search: tt.search})
		if !sameSet(ids(got), tt.want) || got.Total != len(tt.want) {
			t.Errorf("search %q = %v, want %v", tt.search, ids(got), tt.want)
		}
	}
}

func TestListCreatedBy(t *testing.T) {
	recs := []hierarchy.Record{
		owner(),
		rec("a", "A", "distributor", "own", cd{"createdByUser": cd{"user_id": "u1", "organization_id": "own"}}),
		rec("b", "B", "distributor", "own", cd{"createdByUser": cd{"user_id": "u2", "organization_id": "o-2"}}),
		rec("c", "C", "distributor", "own", nil),
	}
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	tests := []struct {
		createdBy []string
		want      []string
	}{
		{[]string{"u1"}, []string{"a"}},
		{[]string{"o-2"}, []string{"b"}},
		{[]string{"u1", "u2", "u1"}, []string{"a", "b"}},
		{[]string{"own"}, []string{"a"}},
		{[]string{"bad id!", "u2"}, []string{"b"}},
		{[]string{"bad id!"}, []string{"a", "b", "c"}},               // nothing valid: no filter
		{[]string{strings.Repeat("x", 65)}, []string{"a", "b", "c"}}, // too long
		{[]string{"nobody"}, nil},
	}
	for _, tt := range tests {
		if got := ids(tree.List(own, hierarchy.TypeDistributor, hierarchy.Query{CreatedBy: tt.createdBy})); !sameSet(got, tt.want) {
			t.Errorf("created_by %v = %v, want %v", tt.createdBy, got, tt.want)
		}
	}
}

func TestListOrganizationIDs(t *testing.T) {
	recs := append(fixture(),
		rec("r5", "Res Five", "reseller", "d1", nil),
		rec("c8", "Cust Eight", "customer", "r5", nil),
		rec("o1", "Orphan", "customer", "ghost", nil),
	)
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	d1 := principal("d1", hierarchy.RoleDistributor)
	tests := []struct {
		name string
		p    hierarchy.Principal
		typ  hierarchy.Type
		q    hierarchy.Query
		want []string
	}{
		{"direct children only", own, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"d1"}}, []string{"c4"}},
		{"several parents", own, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"r1", "r3"}}, []string{"c1", "c2", "c5"}},
		{"with hierarchy", own, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"d1"}, IncludeHierarchy: true}, []string{"c1", "c2", "c4", "c8"}},
		{"resellers of a distributor", own, hierarchy.TypeReseller, hierarchy.Query{OrganizationIDs: []string{"d1"}, IncludeHierarchy: true}, []string{"r1", "r5"}},
		{"ANDed with the scope", d1, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"r1", "r3"}}, []string{"c1", "c2"}},
		{"a deleted parent's children are outside d1's scope", d1, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"r2"}}, nil},
		{"the owner filters by a deleted parent", own, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"r2"}}, []string{"c3"}},
		{"an unknown parent still matches createdBy", own, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"ghost"}}, []string{"o1"}},
		{"invalid ids are dropped", own, hierarchy.TypeCustomer, hierarchy.Query{OrganizationIDs: []string{"r1;", "r3"}}, []string{"c5"}},
		{"ignored for distributors", own, hierarchy.TypeDistributor, hierarchy.Query{OrganizationIDs: []string{"x"}}, []string{"d1", "d2"}},
		{"combined with status", own, hierarchy.TypeReseller, hierarchy.Query{OrganizationIDs: []string{"d1"}, Status: []string{"deleted"}}, []string{"r2"}},
	}
	for _, tt := range tests {
		got := tree.List(tt.p, tt.typ, tt.q)
		if !sameSet(ids(got), tt.want) || got.Total != len(tt.want) {
			t.Errorf("%s: %v (total %d), want %v", tt.name, ids(got), got.Total, tt.want)
		}
	}
}

func TestListSorting(t *testing.T) {
	recs := []hierarchy.Record{
		owner(),
		rec("d1", "beta", "distributor", "own", cd{"createdAt": ts(3), "updatedAt": ts(9), "createdByUser": cd{"name": "Zed"}}),
		rec("d2", "Alpha", "distributor", "own", cd{"createdAt": ts(1), "suspendedAt": ts(5), "createdByUser": cd{"name": "amy"}}),
		rec("d3", "alpha", "distributor", "own", cd{"createdAt": ts(2), "suspendedAt": ts(4)}),
		rec("d4", "Gamma", "distributor", "own", cd{"createdAt": ts(3), "createdByUser": cd{"name": "Bob"}}),
	}
	recs[1].Description = "b"
	recs[2].Description = "C"
	recs[3].Description = "a"
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	tests := []struct {
		sortBy, dir string
		want        []string
	}{
		{"", "", []string{"d4", "d1", "d3", "d2"}},              // created_at desc, ties by id desc
		{"bogus", "asc", []string{"d4", "d1", "d3", "d2"}},      // unknown key: default order
		{"created_at", "asc", []string{"d2", "d3", "d1", "d4"}}, // ties by id asc
		{"created_at", "DESC", []string{"d4", "d1", "d3", "d2"}},
		{"created_at", "sideways", []string{"d2", "d3", "d1", "d4"}},
		{"name", "asc", []string{"d2", "d3", "d1", "d4"}}, // case-insensitive, ties by id
		{"name", "desc", []string{"d4", "d1", "d3", "d2"}},
		{"description", "asc", []string{"d4", "d3", "d1", "d2"}},
		{"updated_at", "desc", []string{"d1", "d4", "d3", "d2"}},
		{"suspended_at", "asc", []string{"d3", "d2", "d1", "d4"}},  // NULLs last
		{"suspended_at", "desc", []string{"d4", "d1", "d2", "d3"}}, // NULLs first
		{"creator_name", "asc", []string{"d2", "d4", "d1", "d3"}},  // lower-cased, NULL last
		{"creator_name", "desc", []string{"d3", "d1", "d4", "d2"}},
	}
	for _, tt := range tests {
		got := ids(tree.List(own, hierarchy.TypeDistributor, hierarchy.Query{SortBy: tt.sortBy, SortDirection: tt.dir}))
		if !slices.Equal(got, tt.want) {
			t.Errorf("sort %q %q = %v, want %v", tt.sortBy, tt.dir, got, tt.want)
		}
	}
}

func TestListPaging(t *testing.T) {
	var recs []hierarchy.Record
	recs = append(recs, owner(), rec("d", "D", "distributor", "own", nil))
	for i := range 45 {
		recs = append(recs, rec("c"+string(rune('a'+i/26))+string(rune('a'+i%26)), "C", "customer", "d", nil))
	}
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	tests := []struct {
		page, size         int
		wantPage, wantSize int
		wantLen            int
	}{
		{0, 0, 1, 20, 20},
		{-3, 10, 1, 10, 10},
		{2, 20, 2, 20, 20},
		{3, 20, 3, 20, 5},
		{4, 20, 4, 20, 0},
		{1, 100, 1, 100, 45},
		{1, 101, 1, 20, 20},
		{1, -1, 1, 20, 20},
		{math.MaxInt, 100, math.MaxInt, 100, 0},
		{math.MaxInt / 20, 20, math.MaxInt / 20, 20, 0},
		{math.MinInt, math.MinInt, 1, 20, 20},
	}
	for _, tt := range tests {
		p := tree.List(own, hierarchy.TypeCustomer, hierarchy.Query{Page: tt.page, PageSize: tt.size})
		if p.Page != tt.wantPage || p.PageSize != tt.wantSize || len(p.Orgs) != tt.wantLen || p.Total != 45 || p.Orgs == nil {
			t.Errorf("page %d size %d: got page %d size %d len %d total %d", tt.page, tt.size, p.Page, p.PageSize, len(p.Orgs), p.Total)
		}
	}
	// Pages partition the result in order.
	var all []string
	for page := 1; page <= 5; page++ {
		all = append(all, ids(tree.List(own, hierarchy.TypeCustomer, hierarchy.Query{Page: page, PageSize: 10, SortBy: "name"}))...)
	}
	full := ids(tree.List(own, hierarchy.TypeCustomer, hierarchy.Query{PageSize: 100, SortBy: "name"}))
	if !slices.Equal(all, full) || len(full) != 45 {
		t.Errorf("pages %v\nfull %v", all, full)
	}
}

func TestListOrganizations(t *testing.T) {
	recs := append(fixture(), rec("c9", "Cust One", "customer", "r1", nil))
	recs[1].Description = "Main distributor"
	tree := hierarchy.Build(recs, hierarchy.Options{})
	own := principal("own", hierarchy.RoleOwner)
	d1 := principal("d1", hierarchy.RoleDistributor)
	tests := []struct {
		name string
		p    hierarchy.Principal
		q    hierarchy.OrgQuery
		want []string
	}{
		{"owner: everything but the owner and the deleted", own, hierarchy.OrgQuery{PageSize: 100},
			[]string{"c1", "c2", "c3", "c4", "c5", "c9", "d1", "d2", "r1", "r3"}},
		{"distributor: itself and its subtree", d1, hierarchy.OrgQuery{}, []string{"d1", "r1", "c1", "c2", "c4", "c9"}},
		{"reseller", principal("r1", hierarchy.RoleReseller), hierarchy.OrgQuery{}, []string{"r1", "c1", "c2", "c9"}},
		{"customer", principal("c4", hierarchy.RoleCustomer), hierarchy.OrgQuery{}, []string{"c4"}},
		{"type", d1, hierarchy.OrgQuery{Type: "reseller"}, []string{"r1"}},
		{"type owner is never listed", own, hierarchy.OrgQuery{Type: "owner"}, nil},
		{"type is exact", own, hierarchy.OrgQuery{Type: "Reseller"}, nil},
		{"name is exact", d1, hierarchy.OrgQuery{Name: "Cust One"}, []string{"c1", "c9"}},
		{"name is case-sensitive", d1, hierarchy.OrgQuery{Name: "cust one"}, nil},
		{"description", own, hierarchy.OrgQuery{Description: "Main distributor"}, []string{"d1"}},
		{"search name or description", own, hierarchy.OrgQuery{Search: "MAIN"}, []string{"d1"}},
		{"search ignores custom data", own, hierarchy.OrgQuery{Search: "distributor"}, []string{"d1"}},
		{"search with type", d1, hierarchy.OrgQuery{Search: "one", Type: "customer"}, []string{"c1", "c9"}},
	}
	for _, tt := range tests {
		got := tree.ListOrganizations(tt.p, tt.q)
		if !sameSet(ids(got), tt.want) || got.Total != len(tt.want) {
			t.Errorf("%s: %v (total %d), want %v", tt.name, ids(got), got.Total, tt.want)
		}
	}
	sorted := []struct {
		q    hierarchy.OrgQuery
		want []string
	}{
		{hierarchy.OrgQuery{}, []string{"c4", "c1", "c9", "c2", "d1", "r1"}}, // name asc, ties by id
		{hierarchy.OrgQuery{SortBy: "name", SortDirection: "desc"}, []string{"r1", "d1", "c2", "c9", "c1", "c4"}},
		{hierarchy.OrgQuery{SortBy: "type"}, []string{"c1", "c2", "c4", "c9", "d1", "r1"}},
		{hierarchy.OrgQuery{SortBy: "created_at"}, []string{"c4", "c1", "c9", "c2", "d1", "r1"}}, // not a picker key
	}
	for _, tt := range sorted {
		if got := ids(tree.ListOrganizations(d1, tt.q)); !slices.Equal(got, tt.want) {
			t.Errorf("picker sort %+v = %v, want %v", tt.q, got, tt.want)
		}
	}
}
