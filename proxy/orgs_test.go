package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// The fixture as upstream-my-contract's authorization suite draws it,
// written out here so that expectations never come from the code under test.
var fixtureParent = map[string]string{
	"d1": "owner", "d2": "owner",
	"d1r1": "d1", "d1r2": "d1", "d2r1": "d2", "d1c1": "d1",
	"d1r1c1": "d1r1", "d1r1c2": "d1r1", "d1r2c1": "d1r2", "d2r1c1": "d2r1",
}

// fixtureLevel is a persona's level, from its name.
func fixtureLevel(persona string) string {
	switch {
	case persona == "owner":
		return "owner"
	case strings.Contains(persona, "c"):
		return "customer"
	case strings.Contains(persona, "r"):
		return "reseller"
	}
	return "distributor"
}

// fixtureSees is DESIGN §2's visibility on the fixture: the owner sees all,
// everyone else itself and its descendants.
func fixtureSees(viewer, target string) bool {
	if viewer == "owner" {
		return true
	}
	for o := target; o != ""; o = fixtureParent[o] {
		if o == viewer {
			return true
		}
	}
	return false
}

// levelReads are the read permissions of each organization role (upstream
// §2.12), by the entity they open.
var levelReads = map[string][]string{
	"owner":       {"customers", "resellers", "distributors"},
	"distributor": {"customers", "resellers"},
	"reseller":    {"customers"},
	"customer":    nil,
}

// entities are the three organization routes with their singular names.
var entities = []struct{ plural, singular string }{
	{"customers", "customer"}, {"resellers", "reseller"}, {"distributors", "distributor"},
}

// listReply is a decoded list answer.
type listReply struct {
	items      []map[string]json.RawMessage
	pagination Pagination
}

// decodeList decodes data: {<key>: [...], pagination}.
func decodeList(t *testing.T, r reply, key string) listReply {
	t.Helper()
	var data map[string]json.RawMessage
	if err := json.Unmarshal(r.Env.Data, &data); err != nil {
		t.Fatalf("data is not an object: %v\n%s", err, r.Body)
	}
	if len(data) != 2 || data[key] == nil || data["pagination"] == nil {
		t.Fatalf("data keys are not {%s, pagination}: %s", key, r.Body)
	}
	if string(data[key]) == "null" {
		t.Fatalf("%s is null, want []", key)
	}
	var out listReply
	if err := json.Unmarshal(data[key], &out.items); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data["pagination"], &out.pagination); err != nil {
		t.Fatal(err)
	}
	return out
}

// str decodes a JSON string member ("" when absent or null).
func str(t *testing.T, item map[string]json.RawMessage, key string) string {
	t.Helper()
	var s *string
	if raw, ok := item[key]; ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s is not a string: %s", key, raw)
		}
	}
	if s == nil {
		return ""
	}
	return *s
}

// ids are the logto_ids of items, in order.
func ids(t *testing.T, items []map[string]json.RawMessage) []string {
	t.Helper()
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = str(t, it, "logto_id")
	}
	return out
}

// names maps fixture organization ids back to persona names.
func (h *harness) names() map[string]string {
	out := map[string]string{}
	for name, id := range h.fixture.Orgs {
		out[id] = strings.ToLower(name)
	}
	return out
}

func TestOrgDetailAuthorizationMatrix(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, viewer := range personas {
		tok := h.token(t, viewer)
		for _, target := range personas {
			id := h.orgID(t, target)
			for _, e := range entities {
				path := "/api/" + e.plural + "/" + id
				r := h.do(t, http.MethodGet, path, tok, nil)
				open := slices.Contains(levelReads[fixtureLevel(viewer)], e.plural) || viewer == target
				switch {
				case !open:
					if r.Status != http.StatusForbidden || r.Env.Message != "insufficient permissions" || string(r.Env.Data) != "null" {
						t.Errorf("%s GET %s (%s): %d %s, want 403 insufficient permissions", viewer, e.plural, target, r.Status, r.Body)
					}
				case fixtureSees(viewer, target) && fixtureLevel(target)+"s" == e.plural:
					var org map[string]json.RawMessage
					if err := json.Unmarshal(r.Env.Data, &org); r.Status != http.StatusOK || err != nil ||
						r.Env.Message != e.singular+" retrieved successfully" || str(t, org, "logto_id") != id {
						t.Errorf("%s GET %s (%s): %d %s, want 200 with the organization", viewer, e.plural, target, r.Status, r.Body)
					}
				default:
					if r.Status != http.StatusNotFound || r.Env.Message != e.singular+" not found" || string(r.Env.Data) != "null" {
						t.Errorf("%s GET %s (%s): %d %s, want 404 %s not found", viewer, e.plural, target, r.Status, r.Body, e.singular)
					}
				}
			}
		}
	}
}

// The upstream's authorization stories (issue 4 "Done when"), by name.
func TestOrgAuthorizationStories(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct {
		name, viewer, entity, target string
		status                       int
	}{
		{"reseller cannot read its sibling's customer", "d1r1", "customers", "d1r2c1", 404},
		{"reseller cannot read the other branch's customer", "d1r1", "customers", "d2r1c1", 404},
		{"reseller cannot read its distributor's direct customer", "d1r1", "customers", "d1c1", 404},
		{"reseller reads its own customer", "d1r1", "customers", "d1r1c2", 200},
		{"reseller reads itself without read:resellers", "d1r1", "resellers", "d1r1", 200},
		{"reseller cannot read its sibling reseller", "d1r1", "resellers", "d1r2", 403},
		{"distributor cannot read a peer distributor", "d1", "distributors", "d2", 403},
		{"distributor cannot read the other branch's reseller", "d1", "resellers", "d2r1", 404},
		{"distributor cannot read the other branch's customer", "d1", "customers", "d2r1c1", 404},
		{"distributor reads its reseller's customer", "d1", "customers", "d1r2c1", 200},
		{"distributor reads its direct customer", "d1", "customers", "d1c1", 200},
		{"distributor reads itself without read:distributors", "d1", "distributors", "d1", 200},
		{"customer reads itself", "d1r1c1", "customers", "d1r1c1", 200},
		{"customer cannot read its sibling", "d1r1c1", "customers", "d1r1c2", 403},
		{"customer's own id under another level is not found", "d1r1c1", "resellers", "d1r1c1", 404},
		{"reseller id under /customers is not found", "owner", "customers", "d1r1", 404},
		{"the owner organization is not a distributor", "owner", "distributors", "owner", 404},
		{"owner reads any customer", "owner", "customers", "d2r1c1", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.get(t, tc.viewer, "/api/"+tc.entity+"/"+h.orgID(t, tc.target))
			if r.Status != tc.status {
				t.Errorf("%d %s, want %d", r.Status, r.Body, tc.status)
			}
		})
	}
	t.Run("a customer is refused the customers list", func(t *testing.T) {
		if r := h.get(t, "d1r1c1", "/api/customers"); r.Status != http.StatusForbidden || r.Env.Message != "insufficient permissions" {
			t.Errorf("%d %s, want 403", r.Status, r.Body)
		}
	})
}

func TestOrgListsAreScopedAndCounted(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	names := h.names()
	for _, viewer := range personas {
		for _, e := range entities {
			r := h.get(t, viewer, "/api/"+e.plural+"?page_size=100")
			if !slices.Contains(levelReads[fixtureLevel(viewer)], e.plural) {
				if r.Status != http.StatusForbidden || r.Env.Message != "insufficient permissions" {
					t.Errorf("%s GET /%s: %d %s, want 403", viewer, e.plural, r.Status, r.Body)
				}
				continue
			}
			if r.Status != http.StatusOK || r.Env.Message != e.plural+" retrieved successfully" {
				t.Fatalf("%s GET /%s: %d %s", viewer, e.plural, r.Status, r.Body)
			}
			list := decodeList(t, r, e.plural)
			var got, want []string
			for _, it := range list.items {
				got = append(got, names[str(t, it, "logto_id")])
				checkCounts(t, names[str(t, it, "logto_id")], it)
			}
			for target := range fixtureParent {
				if fixtureLevel(target)+"s" == e.plural && fixtureSees(viewer, target) {
					want = append(want, target)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) || list.pagination.TotalCount != len(want) {
				t.Errorf("%s GET /%s = %v (total %d), want %v", viewer, e.plural, got, list.pagination.TotalCount, want)
			}
		}
	}
}

// checkCounts checks a list item's counts against the fixture: a
// distributor's resellers and the customers of it and its resellers, a
// reseller's customers, nothing on customers.
func checkCounts(t *testing.T, name string, item map[string]json.RawMessage) {
	t.Helper()
	var resellers, customers int
	for o, parent := range fixtureParent {
		switch {
		case fixtureLevel(o) == "reseller" && parent == name:
			resellers++
		case fixtureLevel(o) == "customer" && (parent == name || fixtureParent[parent] == name && fixtureLevel(parent) == "reseller"):
			customers++
		}
	}
	want := map[string]int{}
	switch fixtureLevel(name) {
	case "distributor":
		want = map[string]int{"resellers_count": resellers, "customers_count": customers}
	case "reseller":
		want = map[string]int{"customers_count": customers}
	}
	for _, key := range []string{"resellers_count", "customers_count", "systems_count", "applications_count"} {
		raw, present := item[key]
		n, expected := want[key]
		switch {
		case present != expected:
			t.Errorf("%s: %s present=%v, want %v", name, key, present, expected)
		case expected && string(raw) != fmt.Sprint(n):
			t.Errorf("%s: %s = %s, want %d", name, key, raw, n)
		}
	}
}

func TestOrganizationsPickerIsScoped(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	names := h.names()
	for _, viewer := range personas {
		r := h.get(t, viewer, "/api/organizations?page_size=100")
		if r.Status != http.StatusOK || r.Env.Message != "organizations retrieved successfully" {
			t.Fatalf("%s: %d %s", viewer, r.Status, r.Body)
		}
		list := decodeList(t, r, "organizations")
		var got, want []string
		for _, it := range list.items {
			name := names[str(t, it, "logto_id")]
			got = append(got, name)
			if len(it) != 5 || str(t, it, "type") != fixtureLevel(name) || str(t, it, "name") != h.fixtureName(name) ||
				str(t, it, "id") != uuid.NewSHA1(orgNamespace, []byte(str(t, it, "logto_id"))).String() {
				t.Errorf("%s: item %v is not {id, logto_id, name, description, type} of %s", viewer, it, name)
			}
		}
		for target := range fixtureParent {
			if fixtureSees(viewer, target) {
				want = append(want, target)
			}
		}
		slices.Sort(want)
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, want) || list.pagination.TotalCount != len(want) {
			t.Errorf("%s: /organizations = %v, want %v", viewer, got, want)
		}
		// The default order is name ascending.
		byName := slices.Clone(got)
		slices.SortStableFunc(byName, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
		if !slices.Equal(got, byName) {
			t.Errorf("%s: /organizations order %v, want by name", viewer, got)
		}
	}
	// type narrows; exact values only.
	r := h.get(t, "d1", "/api/organizations?type=reseller")
	if got := ids(t, decodeList(t, r, "organizations").items); !sameSet(got, []string{h.orgID(t, "d1r1"), h.orgID(t, "d1r2")}) {
		t.Errorf("d1 ?type=reseller = %v", got)
	}
	for _, q := range []string{"type=owner", "type=Reseller", "name=d2", "search=d2r1"} {
		if got := decodeList(t, h.get(t, "d1", "/api/organizations?"+q), "organizations"); len(got.items) != 0 {
			t.Errorf("d1 ?%s listed %v", q, ids(t, got.items))
		}
	}
	if got := ids(t, decodeList(t, h.get(t, "owner", "/api/organizations?name=d2"), "organizations").items); !sameSet(got, []string{h.orgID(t, "d2")}) {
		t.Errorf("owner ?name=d2 = %v", got)
	}
}

// fixtureName is the Logto name of a persona's organization.
func (h *harness) fixtureName(persona string) string {
	if persona == "owner" {
		return "Owner"
	}
	return persona
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// mergeCustomData sets keys of a simulator organization's customData (Logto
// replaces customData wholesale, so the current one is read first).
func mergeCustomData(t *testing.T, h *harness, persona string, set map[string]any) {
	t.Helper()
	id := h.orgID(t, persona)
	org, ok := h.sim.Organization(id)
	if !ok {
		t.Fatalf("no organization %s", persona)
	}
	cd := map[string]any{}
	if err := json.Unmarshal(org.CustomData, &cd); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		cd[k] = v
	}
	if _, err := h.sim.UpdateOrganization(id, map[string]any{"customData": cd}); err != nil {
		t.Fatal(err)
	}
}

// refresh rebuilds the harness's view from the simulator now.
func refresh(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.view.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}

// detail fetches one organization as a persona and decodes it.
func detail(t *testing.T, h *harness, viewer, entity, target string) map[string]json.RawMessage {
	t.Helper()
	r := h.get(t, viewer, "/api/"+entity+"/"+h.orgID(t, target))
	if r.Status != http.StatusOK {
		t.Fatalf("%s GET %s/%s: %d %s", viewer, entity, target, r.Status, r.Body)
	}
	var org map[string]json.RawMessage
	if err := json.Unmarshal(r.Env.Data, &org); err != nil {
		t.Fatal(err)
	}
	return org
}

func TestOrgObjectFields(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	const (
		d1r1Suspended = "2025-05-01T10:00:00Z"
		d2Suspended   = "2025-04-01T08:30:00.5+02:00"
		d1r2Deleted   = "2025-06-01T00:00:00Z"
	)
	mergeCustomData(t, h, "d1", map[string]any{"rebrandingEnabled": true})
	mergeCustomData(t, h, "d1c1", map[string]any{"rebrandingEnabled": true, "notes": "<b>&</b>"})
	mergeCustomData(t, h, "d1r1", map[string]any{"suspendedAt": d1r1Suspended})
	mergeCustomData(t, h, "d2", map[string]any{"suspendedAt": d2Suspended,
		"promotedFrom": map[string]any{"level": "reseller", "at": "2025-01-01T00:00:00Z"}})
	mergeCustomData(t, h, "d1r2", map[string]any{"deletedAt": d1r2Deleted})
	refresh(t, h)

	type want struct {
		entity, target     string
		suspendedAt        any // string or nil
		suspendedBy        any // persona, nil, or absent
		rebrandingOrg      string
		deletedAt, promote bool
	}
	const absent = "absent"
	for _, w := range []want{
		{"distributors", "d1", nil, absent, "d1", false, false},
		{"distributors", "d2", d2Suspended, absent, "", false, true},
		{"resellers", "d1r1", d1r1Suspended, nil, "d1", false, false},
		{"resellers", "d2r1", d2Suspended, "d2", "", false, false},
		{"customers", "d1r1c1", d1r1Suspended, "d1r1", "d1", false, false},
		{"customers", "d2r1c1", d2Suspended, "d2", "", false, false},
		{"customers", "d1c1", nil, nil, "d1c1", false, false},
		{"customers", "d1r2c1", nil, nil, "", false, false}, // its reseller is deleted: no inheritance
	} {
		org := detail(t, h, "owner", w.entity, w.target)
		name := w.target
		if got := str(t, org, "suspended_at"); !sameInstant(got, w.suspendedAt) {
			t.Errorf("%s: suspended_at %q, want %v", name, got, w.suspendedAt)
		}
		raw, has := org["suspended_by_org_id"]
		switch w.suspendedBy {
		case absent:
			if has {
				t.Errorf("%s: has suspended_by_org_id %s, want no key", name, raw)
			}
		case nil:
			if !has || string(raw) != "null" {
				t.Errorf("%s: suspended_by_org_id %s (present %v), want null", name, raw, has)
			}
		default:
			if got := str(t, org, "suspended_by_org_id"); got != h.orgID(t, w.suspendedBy.(string)) {
				t.Errorf("%s: suspended_by_org_id %q, want %s", name, got, w.suspendedBy)
			}
		}
		enabled := string(org["rebranding_enabled"])
		rebrandingID, hasRebranding := org["rebranding_org_id"]
		switch {
		case w.rebrandingOrg == "" && (enabled != "false" || hasRebranding):
			t.Errorf("%s: rebranding_enabled %s, rebranding_org_id %s, want false and no key", name, enabled, rebrandingID)
		case w.rebrandingOrg != "" && (enabled != "true" || str(t, org, "rebranding_org_id") != h.orgID(t, w.rebrandingOrg)):
			t.Errorf("%s: rebranding_enabled %s, rebranding_org_id %s, want true and %s", name, enabled, rebrandingID, w.rebrandingOrg)
		}
		_, hasPromoted := org["promoted_from"]
		if hasPromoted != w.promote {
			t.Errorf("%s: promoted_from present=%v, want %v", name, hasPromoted, w.promote)
		}
		for _, key := range []string{"logto_synced_at", "logto_sync_error", "systems_count", "applications_count",
			"resellers_count", "customers_count"} {
			if _, ok := org[key]; ok {
				t.Errorf("%s: detail has %s", name, key)
			}
		}
		var cd map[string]json.RawMessage
		if err := json.Unmarshal(org["custom_data"], &cd); err != nil {
			t.Fatalf("%s: custom_data %s: %v", name, org["custom_data"], err)
		}
		if _, ok := cd["createdByUser"]; ok {
			t.Errorf("%s: custom_data still has createdByUser", name)
		}
		if _, ok := cd["promotedFrom"]; ok {
			t.Errorf("%s: custom_data still has promotedFrom", name)
		}
		if str(t, cd, "type") != fixtureLevel(name) || str(t, cd, "createdBy") != h.orgID(t, fixtureParent[name]) || str(t, cd, "vat") == "" {
			t.Errorf("%s: custom_data lost its members: %s", name, org["custom_data"])
		}
		if str(t, org, "created_at") != str(t, cd, "createdAt") || string(org["deleted_at"]) != "null" {
			t.Errorf("%s: created_at %s / deleted_at %s", name, org["created_at"], org["deleted_at"])
		}
	}

	// The creator snapshot is the parent's user, as the fixture wrote it.
	var creator hierarchy.Creator
	if err := json.Unmarshal(detail(t, h, "owner", "resellers", "d1r1")["created_by"], &creator); err != nil {
		t.Fatal(err)
	}
	if creator.UserID != h.fixture.Users["d1"] || creator.OrganizationID != h.orgID(t, "d1") || creator.OrganizationName != "d1" || creator.Username != "d1" {
		t.Errorf("d1r1 created_by = %+v", creator)
	}
	if cd := detail(t, h, "owner", "customers", "d1c1")["custom_data"]; !strings.Contains(string(cd), "notes") {
		t.Errorf("d1c1 custom_data lost an extra key: %s", cd)
	}

	// Soft delete: hidden from details (even to the owner) and from the
	// distributor's view of the deleted reseller's customers; listed only
	// under status=deleted; not counted.
	if r := h.get(t, "owner", "/api/resellers/"+h.orgID(t, "d1r2")); r.Status != http.StatusNotFound {
		t.Errorf("owner GET a deleted reseller: %d", r.Status)
	}
	if r := h.get(t, "d1", "/api/customers/"+h.orgID(t, "d1r2c1")); r.Status != http.StatusNotFound {
		t.Errorf("d1 GET the customer of its deleted reseller: %d", r.Status)
	}
	deleted := decodeList(t, h.get(t, "d1", "/api/resellers?status=DELETED"), "resellers")
	if got := ids(t, deleted.items); !sameSet(got, []string{h.orgID(t, "d1r2")}) || !sameInstant(str(t, deleted.items[0], "deleted_at"), d1r2Deleted) {
		t.Errorf("d1 ?status=deleted resellers = %v", got)
	}
	d1List := decodeList(t, h.get(t, "owner", "/api/distributors"), "distributors")
	for _, it := range d1List.items {
		if str(t, it, "logto_id") == h.orgID(t, "d1") && (string(it["resellers_count"]) != "1" || string(it["customers_count"]) != "3") {
			t.Errorf("d1 counts after deleting d1r2: resellers %s customers %s, want 1 and 3", it["resellers_count"], it["customers_count"])
		}
	}
	if got := ids(t, decodeList(t, h.get(t, "d1", "/api/customers?page_size=100"), "customers").items); slices.Contains(got, h.orgID(t, "d1r2c1")) {
		t.Errorf("d1's customers list still has d1r2c1")
	}
	// Suspension filters: d1r1 and its customers are suspended.
	suspended := decodeList(t, h.get(t, "d1", "/api/customers?status=suspended"), "customers")
	if got := ids(t, suspended.items); !sameSet(got, []string{h.orgID(t, "d1r1c1"), h.orgID(t, "d1r1c2")}) {
		t.Errorf("d1 ?status=suspended customers = %v", got)
	}
}

// sameInstant compares a served timestamp with an expected RFC 3339 one (or
// nil for null).
func sameInstant(got string, want any) bool {
	if want == nil {
		return got == ""
	}
	g, err1 := time.Parse(time.RFC3339Nano, got)
	w, err2 := time.Parse(time.RFC3339Nano, want.(string))
	return err1 == nil && err2 == nil && g.Equal(w)
}

func TestOrgListFilters(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.orgID(t, "d1")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"organization_id=" + d1, []string{"d1c1"}},
		{"organization_id=" + d1 + "&include_hierarchy=true", []string{"d1c1", "d1r1c1", "d1r1c2", "d1r2c1"}},
		{"organization_id=" + d1 + "&include_hierarchy=yes", []string{"d1c1"}},
		{"organization_id=" + h.orgID(t, "d1r1") + "&organization_id=" + h.orgID(t, "d1r2"), []string{"d1r1c1", "d1r1c2", "d1r2c1"}},
		{"organization_id=" + h.orgID(t, "d2r1"), nil}, // outside the scope
		{"search=D1R1C", []string{"d1r1c1", "d1r1c2"}},
		{"search=via+d1c1", []string{"d1c1"}}, // custom_data values are searched
		{"created_by=" + h.fixture.Users["d1r1"], []string{"d1r1c1", "d1r1c2"}},
		{"created_by=" + h.orgID(t, "d1r2"), []string{"d1r2c1"}},
	} {
		r := h.get(t, "d1", "/api/customers?page_size=100&"+tc.query)
		if r.Status != http.StatusOK {
			t.Fatalf("?%s: %d %s", tc.query, r.Status, r.Body)
		}
		var want []string
		for _, p := range tc.want {
			want = append(want, h.orgID(t, p))
		}
		if got := ids(t, decodeList(t, r, "customers").items); !sameSet(got, want) {
			t.Errorf("d1 /customers?%s = %v, want %v", tc.query, got, tc.want)
		}
	}
	// Sorting by name both ways, paged.
	asc := ids(t, decodeList(t, h.get(t, "owner", "/api/customers?sort_by=name&page_size=100"), "customers").items)
	desc := ids(t, decodeList(t, h.get(t, "owner", "/api/customers?sort_by=name&sort_direction=desc&page_size=100"), "customers").items)
	names := h.names()
	byName := slices.SortedFunc(slices.Values(asc), func(a, b string) int { return strings.Compare(names[a], names[b]) })
	if !slices.Equal(asc, byName) || !slices.Equal(desc, reversed(asc)) {
		t.Errorf("sort by name: asc %v, desc %v", asc, desc)
	}
	var paged []string
	for page := 1; page <= 3; page++ {
		l := decodeList(t, h.get(t, "owner", fmt.Sprintf("/api/customers?sort_by=name&page_size=2&page=%d", page)), "customers")
		paged = append(paged, ids(t, l.items)...)
		p := l.pagination
		if p.Page != page || p.PageSize != 2 || p.TotalCount != 5 || p.TotalPages != 3 || p.HasNext != (page < 3) || p.HasPrev != (page > 1) ||
			p.SortBy != "name" || p.SortDirection != "asc" {
			t.Errorf("page %d pagination %+v", page, p)
		}
	}
	if !slices.Equal(paged, asc) {
		t.Errorf("pages %v do not partition %v", paged, asc)
	}
}
