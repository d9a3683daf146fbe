package proxy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// stringCases are strings that exercise every escaping rule.
var stringCases = []string{
	"", "plain", `quote " and backslash \`, "tab\tnewline\ncarriage\rbackspace\bformfeed\f",
	"\x00\x01\x1f\x7f", "<script>alert('x') & more</script>", "accents: àèìòù, CJK: 漢字, emoji: 🦊",
	"line sep \u2028 para sep \u2029", "invalid \xff\xfe utf-8 \xc3", "truncated \xe2\x82", "surrogate-ish \xed\xa0\x80",
	strings.Repeat("long ", 1000),
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range stringCases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendPaginationMatchesEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		paging Paging
		total  int
	}{
		{Paging{Page: 1, PageSize: 20}, 0},
		{Paging{Page: 1, PageSize: 20}, 45},
		{Paging{Page: 2, PageSize: 20, SortBy: "name"}, 45},
		{Paging{Page: 3, PageSize: 20, SortBy: "bogus", Desc: true}, 45},
		{Paging{Page: 9, PageSize: 5, SortBy: `"<odd>"`}, 45},
	} {
		p := NewPagination(tc.paging, tc.total)
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPagination(nil, p); string(got) != string(want) {
			t.Errorf("appendPagination(%+v) = %s, want %s", p, got, want)
		}
	}
}

func TestAppendTimeMatchesEncodingJSON(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC),
		time.Date(2025, 3, 1, 9, 30, 0, 123456000, time.FixedZone("CET", 3600)),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
	} {
		want, err := json.Marshal(tm)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	if got := appendTime(nil, time.Time{}); string(got) != "null" {
		t.Errorf("the zero time renders as %s, want null", got)
	}
}

// orgNamespace is the organizations' UUIDv5 namespace as DESIGN §2 fixes it,
// spelled out here so that ids are checked independently of the domain.
var orgNamespace = uuid.MustParse("4a600b32-c03e-56d8-b88a-ff5756fa9be1")

// expectedOrg is the upstream organization object for o, built with maps and
// encoding/json from the rules of upstream-my-contract §2.9 and DESIGN §3.
func expectedOrg(o *hierarchy.Org, shape orgShape) map[string]any {
	nullableTime := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.Format(time.RFC3339Nano)
	}
	m := map[string]any{
		"id":                 uuid.NewSHA1(orgNamespace, []byte(o.LogtoID)).String(),
		"logto_id":           o.LogtoID,
		"name":               o.Name,
		"description":        o.Description,
		"custom_data":        json.RawMessage(o.CustomData),
		"created_at":         o.CreatedAt.Format(time.RFC3339Nano),
		"updated_at":         o.UpdatedAt.Format(time.RFC3339Nano),
		"deleted_at":         nullableTime(o.DeletedAt),
		"suspended_at":       nullableTime(o.SuspendedAt),
		"rebranding_enabled": o.RebrandingOrgID != "",
	}
	if o.Type != hierarchy.TypeDistributor {
		m["suspended_by_org_id"] = nil
		if o.SuspendedByOrgID != "" {
			m["suspended_by_org_id"] = o.SuspendedByOrgID
		}
	}
	if o.RebrandingOrgID != "" {
		m["rebranding_org_id"] = o.RebrandingOrgID
	}
	if shape == shapeListItem && o.Type == hierarchy.TypeDistributor {
		m["resellers_count"] = o.ResellersCount
	}
	if shape == shapeListItem && o.Type != hierarchy.TypeCustomer {
		m["customers_count"] = o.CustomersCount
	}
	if o.Creator != nil {
		m["created_by"] = o.Creator
	}
	if o.Type == hierarchy.TypeDistributor && o.PromotedFrom != nil {
		m["promoted_from"] = json.RawMessage(o.PromotedFrom)
	}
	return m
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// Every organization of messy random trees (bad data included) renders as
// valid JSON holding exactly the upstream's members, in both shapes.
func TestAppendOrgMatchesTheUpstreamObject(t *testing.T) {
	seen := map[hierarchy.Type]bool{}
	for seed := range uint64(4) {
		tree := hierarchy.Build(hierarchytest.RandomRecords(seed, hierarchytest.Messy(2)), hierarchy.Options{})
		owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
		for _, typ := range []hierarchy.Type{hierarchy.TypeDistributor, hierarchy.TypeReseller, hierarchy.TypeCustomer} {
			page := tree.List(owner, typ, hierarchy.Query{Status: []string{"enabled", "suspended", "deleted"}, PageSize: 100})
			for i := range page.Orgs {
				o := &page.Orgs[i]
				seen[typ] = true
				for _, shape := range []orgShape{shapeDetail, shapeListItem} {
					got := appendOrg(nil, o, shape)
					want, err := json.Marshal(expectedOrg(o, shape))
					if err != nil {
						t.Fatal(err)
					}
					if !sameJSON(t, got, want) {
						t.Fatalf("%s (shape %d):\n got %s\nwant %s", o.LogtoID, shape, got, want)
					}
				}
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("the random trees lacked a level: %v", seen)
	}
}

func TestAppendPickerItem(t *testing.T) {
	tree := hierarchy.Build(hierarchytest.RandomRecords(7, hierarchytest.Messy(1)), hierarchy.Options{})
	page := tree.ListOrganizations(hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}, hierarchy.OrgQuery{PageSize: 100})
	if len(page.Orgs) == 0 {
		t.Fatal("no organizations")
	}
	for i := range page.Orgs {
		o := &page.Orgs[i]
		want, err := json.Marshal(map[string]string{
			"id": uuid.NewSHA1(orgNamespace, []byte(o.LogtoID)).String(), "logto_id": o.LogtoID,
			"name": o.Name, "description": o.Description, "type": o.Type.String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPickerItem(nil, o); !sameJSON(t, got, want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
