package hierarchy_test

import (
	"slices"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func TestParseRole(t *testing.T) {
	tests := map[string]hierarchy.Role{
		"Owner": hierarchy.RoleOwner, "owner": hierarchy.RoleOwner, "DISTRIBUTOR": hierarchy.RoleDistributor,
		"Reseller": hierarchy.RoleReseller, "customer": hierarchy.RoleCustomer, "": hierarchy.RoleNone, "admin": hierarchy.RoleNone,
	}
	for in, want := range tests {
		if got := hierarchy.ParseRole(in); got != want {
			t.Errorf("ParseRole(%q) = %v, want %v", in, got, want)
		}
	}
	if hierarchy.RoleDistributor.String() != "Distributor" || hierarchy.RoleNone.String() != "" {
		t.Error("Role.String is not the upstream's capitalised org_role")
	}
}

func TestScope(t *testing.T) {
	tree := hierarchy.Build(fixture(), hierarchy.Options{})
	known := []string{"own", "d1", "r1", "c1", "c2", "r2", "c3", "c4", "d2", "r3", "c5"}
	all := append(slices.Clone(known), "new") // who sees everything also sees what the Tree does not know
	tests := []struct {
		name string
		p    hierarchy.Principal
		want []string
	}{
		{"owner", principal("own", hierarchy.RoleOwner), all},
		{"tree-wide service", hierarchy.Principal{Service: true, TreeWide: true}, all},
		{"distributor", principal("d1", hierarchy.RoleDistributor), []string{"d1", "r1", "c1", "c2", "r2", "c4"}},
		{"reseller", principal("r1", hierarchy.RoleReseller), []string{"r1", "c1", "c2"}},
		{"customer", principal("c1", hierarchy.RoleCustomer), []string{"c1"}},
		{"the role never widens", principal("r3", hierarchy.RoleOwner), []string{"r3", "c5"}},
		{"the role never narrows", principal("d2", hierarchy.RoleCustomer), []string{"d2", "r3", "c5"}},
		{"service token limited to an organization", hierarchy.Principal{OrgID: "r3", Service: true}, []string{"r3", "c5"}},
		{"TreeWide without Service is ignored", hierarchy.Principal{OrgID: "c5", Role: hierarchy.RoleCustomer, TreeWide: true}, []string{"c5"}},
		{"user without a role", principal("d1", hierarchy.RoleNone), nil},
		{"no organization", principal("", hierarchy.RoleOwner), nil},
		{"soft-deleted organization", principal("r2", hierarchy.RoleReseller), nil},
		{"orphaned by deletion", principal("c3", hierarchy.RoleCustomer), []string{"c3"}},
		{"unknown organization sees itself only", principal("new", hierarchy.RoleDistributor), []string{"new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tree.Scope(tt.p)
			var got []string
			for _, id := range append(slices.Clone(known), "new", "") {
				if s.Contains(id) {
					got = append(got, id)
				}
				if s.Contains(id) != tree.CanSee(tt.p, id) {
					t.Errorf("Scope.Contains and CanSee disagree on %q", id)
				}
			}
			if !sameSet(got, tt.want) {
				t.Errorf("scope = %v, want %v", got, tt.want)
			}
			wantLen := len(tt.want)
			if s.Everything() {
				wantLen-- // "new" is not in the Tree
			}
			if s.Len() != wantLen {
				t.Errorf("Len = %d, want %d", s.Len(), wantLen)
			}
			var listed []string
			for id := range s.LogtoIDs() {
				listed = append(listed, id)
			}
			wantListed := slices.DeleteFunc(slices.Clone(tt.want), func(id string) bool {
				return id == "r2" || (id == "new" && s.Everything())
			})
			if !sameSet(listed, wantListed) {
				t.Errorf("LogtoIDs = %v, want %v (no soft-deleted)", listed, wantListed)
			}
			if s.Everything() != (len(tt.want) == len(all)) {
				t.Errorf("Everything = %v", s.Everything())
			}
		})
	}
}

func TestEverythingIsNeverInferredFromTheRange(t *testing.T) {
	// Without an Owner record, d's subtree is every known organization.
	tree := hierarchy.Build([]hierarchy.Record{
		rec("d", "D", "distributor", "own", nil),
		rec("c", "C", "customer", "d", nil),
	}, hierarchy.Options{})
	if s := tree.Scope(principal("d", hierarchy.RoleDistributor)); s.Everything() || s.Len() != 2 {
		t.Fatalf("distributor scope: everything %v len %d", s.Everything(), s.Len())
	}
	if !tree.Scope(hierarchy.Principal{Service: true, TreeWide: true}).Everything() {
		t.Fatal("a tree-wide service does not see everything")
	}
	empty := hierarchy.Build(nil, hierarchy.Options{OwnerID: "own"})
	if !empty.Scope(principal("own", hierarchy.RoleOwner)).Everything() {
		t.Fatal("the Owner of an empty tree does not see everything")
	}
}

func TestLogtoIDsStopsEarly(t *testing.T) {
	tree := hierarchy.Build(fixture(), hierarchy.Options{})
	n := 0
	for range tree.Scope(principal("own", hierarchy.RoleOwner)).LogtoIDs() {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("iterated %d", n)
	}
}

func TestCanSeeAllocatesNothing(t *testing.T) {
	tree := hierarchy.Build(fixture(), hierarchy.Options{})
	p := principal("d1", hierarchy.RoleDistributor)
	allocs := testing.AllocsPerRun(100, func() {
		if !tree.CanSee(p, "c4") || tree.CanSee(p, "c5") {
			t.Fatal("wrong answer")
		}
	})
	if allocs != 0 {
		t.Fatalf("CanSee allocates %v times", allocs)
	}
}

func TestFind(t *testing.T) {
	tree := hierarchy.Build(fixture(), hierarchy.Options{})
	d1 := principal("d1", hierarchy.RoleDistributor)
	if o, ok := tree.Find(d1, "c1"); !ok || o.LogtoID != "c1" {
		t.Errorf("Find(d1, c1) = %v, %v", o.LogtoID, ok)
	}
	for _, id := range []string{"c5", "r2", "c3", "missing", ""} {
		if o, ok := tree.Find(d1, id); ok {
			t.Errorf("Find(d1, %q) found %+v", id, o)
		}
	}
	if _, ok := tree.Find(principal("own", hierarchy.RoleOwner), "r2"); ok {
		t.Error("the owner finds a soft-deleted organization on a detail route")
	}
}

func TestPrincipalHas(t *testing.T) {
	p := hierarchy.Principal{Permissions: []string{hierarchy.PermReadCustomers, "manage:customers"}}
	if !p.Has(hierarchy.PermReadCustomers) || p.Has(hierarchy.PermReadUsers) {
		t.Fatal("Has is wrong")
	}
}
