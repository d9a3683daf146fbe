package hierarchy_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// FuzzBuild feeds arbitrary customData (and names and search terms) to Build
// and to every query: nothing may panic, every served custom_data must be a
// JSON object, and lists must stay consistent. The committed corpus is in
// testdata/fuzz/FuzzBuild.
func FuzzBuild(f *testing.F) {
	for _, seed := range []string{
		`{"type":"customer","createdBy":"d"}`,
		`{"type":"reseller","createdBy":"d","createdByUser":{"user_id":"u","name":"N"}}`,
		`{"type":"distributor","createdBy":"own","promotedFrom":{"level":"reseller"}}`,
		`{"type":"customer","createdBy":"x","deletedAt":"2024-01-01T00:00:00Z","suspendedAt":12}`,
		`{"type":`, `[]`, `null`, ``, `"x"`, `{"a":"\ud800","b":"\u0000"}`,
		`{"type":"customer","type":"reseller","createdBy":"d","createdBy":"x"}`,
	} {
		f.Add([]byte(seed), "Name", "search")
	}
	f.Fuzz(func(t *testing.T, data []byte, name, search string) {
		recs := []hierarchy.Record{
			{ID: "own", Name: "Owner"},
			{ID: "d", Name: "D", CustomData: []byte(`{"type":"distributor","createdBy":"own"}`)},
			{ID: "x", Name: name, CustomData: data},
			{ID: "y", Name: "Y", CustomData: data},
			{ID: "x", Name: "dup", CustomData: data},
			{ID: name, Name: name, CustomData: data},
		}
		tree := hierarchy.Build(recs, hierarchy.Options{})
		for _, id := range []string{"own", "d", "x", "y", name} {
			o, ok := tree.Org(id)
			if !ok && id != "" {
				t.Fatalf("%q missing", id)
			}
			if !ok {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(o.CustomData, &obj); err != nil {
				t.Fatalf("custom_data of %q is not an object: %q: %v", id, o.CustomData, err)
			}
			if o.PromotedFrom != nil && !json.Valid(o.PromotedFrom) {
				t.Fatalf("promoted_from of %q is not JSON: %q", id, o.PromotedFrom)
			}
		}
		for _, p := range []hierarchy.Principal{
			{OrgID: "own", Role: hierarchy.RoleOwner},
			{OrgID: "d", Role: hierarchy.RoleDistributor},
			{OrgID: "x", Role: hierarchy.RoleCustomer},
			{OrgID: name, Role: hierarchy.RoleReseller},
		} {
			for _, typ := range []hierarchy.Type{hierarchy.TypeDistributor, hierarchy.TypeReseller, hierarchy.TypeCustomer} {
				for _, sortBy := range []string{"name", "creator_name", "suspended_at", ""} {
					q := hierarchy.Query{Search: search, SortBy: sortBy, Status: []string{search, "deleted", "enabled"},
						CreatedBy: []string{search}, OrganizationIDs: []string{search, "d"}, IncludeHierarchy: true}
					page := tree.List(p, typ, q)
					if len(page.Orgs) > page.Total {
						t.Fatalf("page of %d over a total of %d", len(page.Orgs), page.Total)
					}
					for _, o := range page.Orgs {
						if !tree.CanSee(p, o.LogtoID) {
							t.Fatalf("%+v listed %q it cannot see", p, o.LogtoID)
						}
					}
				}
			}
			tree.ListOrganizations(p, hierarchy.OrgQuery{Search: search, Name: name, Type: search, SortBy: "type"})
		}
		// The organization whose id is the fuzzed name is the only one with
		// that name: a search for its name must find it.
		if o, ok := tree.Org(name); ok && !slices.Contains([]string{"own", "d", "x", "y"}, name) &&
			!strings.Contains(name, "\x00") && !o.Deleted() && o.Type != hierarchy.TypeOwner {
			owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
			got := tree.ListOrganizations(owner, hierarchy.OrgQuery{Search: name, PageSize: 100})
			if !slices.Contains(ids(got), name) {
				t.Fatalf("search %q does not find the organization named so: %v", name, ids(got))
			}
		}
	})
}
