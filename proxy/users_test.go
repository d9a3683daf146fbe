package proxy

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// userOf is the Logto id of a fixture persona's user.
func (h *harness) userOf(persona string) string { return h.fixture.Users[h.fixtureName(persona)] }

// listUsers lists users as the bearer of token and decodes the answer,
// which must be a 200 in the upstream's list shape.
func listUsers(t *testing.T, h *harness, token string, query url.Values) listReply {
	t.Helper()
	r := h.do(t, http.MethodGet, "/api/users?"+query.Encode(), token, nil)
	if r.Status != http.StatusOK || r.Env.Message != "users retrieved successfully" {
		t.Fatalf("GET /api/users?%s: %d %s", query.Encode(), r.Status, r.Body)
	}
	return decodeList(t, r, "users")
}

// everyStatus lists users whatever their status, a page of 100.
func everyStatus(extra ...string) url.Values {
	q := url.Values{"status": {"enabled", "suspended", "deleted"}, "page_size": {"100"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Add(extra[i], extra[i+1])
	}
	return q
}

// tokenWith mints a session token for a persona whose user permissions are
// perms (the organization role's permissions are kept).
func (h *harness) tokenWith(t *testing.T, persona string, perms ...string) string {
	t.Helper()
	u := h.personaUser(t, persona)
	u.UserPermissions = perms
	tok, _, err := h.sessions.MintAccess(u)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// refreshUsers rebuilds both views from the simulator now.
func refreshUsers(t *testing.T, h *harness) {
	t.Helper()
	refresh(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.users.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUsersListIsScopedForEveryPersona(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, viewer := range personas {
		var want []string
		for _, target := range personas {
			// The Owner organization's users are never listed (upstream has
			// no rows for them), not even to the owner.
			if target != "owner" && fixtureSees(viewer, target) {
				want = append(want, h.userOf(target))
			}
		}
		got := listUsers(t, h, h.token(t, viewer), url.Values{"page_size": {"100"}})
		if !sameSet(ids(t, got.items), want) || got.pagination.TotalCount != len(want) {
			t.Errorf("%s lists %v (total %d), want %v", viewer, ids(t, got.items), got.pagination.TotalCount, want)
		}
		for _, it := range got.items {
			org := map[string]json.RawMessage{}
			if err := json.Unmarshal(it["organization"], &org); err != nil {
				t.Fatalf("organization of %s: %v", str(t, it, "logto_id"), err)
			}
			if home := h.names()[str(t, org, "logto_id")]; !fixtureSees(viewer, home) {
				t.Errorf("%s sees a user of %s", viewer, home)
			}
		}
	}
}

func TestUserDetailIsScopedForEveryPersona(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, viewer := range personas {
		tok := h.token(t, viewer)
		for _, target := range personas {
			r := h.do(t, http.MethodGet, "/api/users/"+h.userOf(target), tok, nil)
			visible := viewer == target || (target != "owner" && fixtureSees(viewer, target))
			switch {
			case visible && (r.Status != http.StatusOK || r.Env.Message != "user retrieved successfully"):
				t.Errorf("%s reading %s's user: %d %s, want 200", viewer, target, r.Status, r.Body)
			case !visible && (r.Status != http.StatusNotFound || r.Env.Message != "user not found" || string(r.Env.Data) != "null"):
				t.Errorf("%s reading %s's user: %d %s, want 404 user not found", viewer, target, r.Status, r.Body)
			}
		}
		// A missing user looks exactly like an invisible one.
		if r := h.do(t, http.MethodGet, "/api/users/nosuchuser00", tok, nil); r.Status != http.StatusNotFound || r.Env.Message != "user not found" {
			t.Errorf("%s reading a missing user: %d %s", viewer, r.Status, r.Body)
		}
	}
}

func TestUsersNeedReadUsersButSelfNeverDoes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, persona := range []string{"owner", "d1", "d1r1c1"} {
		tok := h.tokenWith(t, persona, "read:systems")
		if r := h.do(t, http.MethodGet, "/api/users", tok, nil); r.Status != http.StatusForbidden ||
			r.Env.Message != "insufficient permissions" || string(r.Env.Data) != "null" {
			t.Errorf("%s without read:users listing: %d %s", persona, r.Status, r.Body)
		}
		if r := h.do(t, http.MethodGet, "/api/users/"+h.userOf(persona), tok, nil); r.Status != http.StatusOK {
			t.Errorf("%s without read:users reading itself: %d %s", persona, r.Status, r.Body)
		}
	}
	// Another user is refused before anything is looked up, visible or not.
	tok := h.tokenWith(t, "d1")
	for _, target := range []string{"d1r1", "d2", "nosuchuser00"} {
		id := h.userOf(target)
		if id == "" {
			id = target
		}
		if r := h.do(t, http.MethodGet, "/api/users/"+id, tok, nil); r.Status != http.StatusForbidden || r.Env.Message != "insufficient permissions" {
			t.Errorf("d1 without read:users reading %s: %d %s", target, r.Status, r.Body)
		}
	}
	// Service tokens are gated the same way.
	noUsers := h.serviceToken(t, "read:customers")
	if r := h.do(t, http.MethodGet, "/api/users", noUsers, nil); r.Status != http.StatusForbidden {
		t.Errorf("service token without read:users: %d %s", r.Status, r.Body)
	}
}

func TestUsersOrganizationFilterIsIntersectedWithTheScope(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	org := func(p string) string { return h.orgID(t, p) }
	users := func(ps ...string) []string {
		out := []string{}
		for _, p := range ps {
			out = append(out, h.userOf(p))
		}
		return out
	}
	treeWide := h.serviceToken(t, "read:users")
	ofD1r1 := h.logtoToken(t, logtotest.UserTokenOptions{OrganizationID: org("d1r1"), Scopes: []string{"read:users"}})
	cases := []struct {
		name, token string
		orgs        []string
		want        []string
	}{
		{"d1 narrows to its customer", h.token(t, "d1"), []string{org("d1r1c1")}, users("d1r1c1")},
		{"d1 names two branches", h.token(t, "d1"), []string{org("d1r1c1"), org("d2r1c1")}, users("d1r1c1")},
		{"d1 names another branch only", h.token(t, "d1"), []string{org("d2r1c1"), org("d2")}, users()},
		{"d1 names two of its own", h.token(t, "d1"), []string{org("d1r2"), org("d1c1"), org("d1c1")}, users("d1r2", "d1c1")},
		{"a customer names its parent", h.token(t, "d1r1c1"), []string{org("d1r1")}, users()},
		{"the owner uses them as is", h.token(t, "owner"), []string{org("d2r1c1"), org("d1")}, users("d2r1c1", "d1")},
		{"the owner names the Owner organization", h.token(t, "owner"), []string{org("owner")}, users()},
		{"a tree-wide service reads a customer's members", treeWide, []string{org("d2r1c1")}, users("d2r1c1")},
		{"a service scoped to d1r1 reads its customer", ofD1r1, []string{org("d1r1c2")}, users("d1r1c2")},
		{"a service scoped to d1r1 outside it", ofD1r1, []string{org("d1c1")}, users()},
		{"a service scoped to d1r1, unfiltered", ofD1r1, nil, users("d1r1", "d1r1c1", "d1r1c2")},
	}
	for _, tc := range cases {
		got := listUsers(t, h, tc.token, url.Values{"organization_id": tc.orgs})
		if !sameSet(ids(t, got.items), tc.want) || got.pagination.TotalCount != len(tc.want) {
			t.Errorf("%s: %v (total %d), want %v", tc.name, ids(t, got.items), got.pagination.TotalCount, tc.want)
		}
	}
	// A service reads a member it can see by id, and not one it cannot.
	if r := h.do(t, http.MethodGet, "/api/users/"+h.userOf("d1r1c2"), ofD1r1, nil); r.Status != http.StatusOK {
		t.Errorf("scoped service reading its member: %d %s", r.Status, r.Body)
	}
	if r := h.do(t, http.MethodGet, "/api/users/"+h.userOf("d1"), ofD1r1, nil); r.Status != http.StatusNotFound {
		t.Errorf("scoped service reading above its organization: %d %s", r.Status, r.Body)
	}
}

func TestUserObjectFields(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	id := h.userOf("d1r1c1")
	orgID := h.orgID(t, "d1r1c1")
	sim, _ := h.sim.User(id)
	listKeys := []string{"id", "logto_id", "username", "email", "name", "phone", "organization", "roles", "custom_data",
		"created_at", "updated_at", "latest_login_at", "deleted_at", "suspended_at", "suspended_by_org_id", "created_by"}

	check := func(where string, it map[string]json.RawMessage, keys []string) {
		t.Helper()
		if got := slices.Sorted(maps.Keys(it)); !slices.Equal(got, slices.Sorted(slices.Values(keys))) {
			t.Errorf("%s: keys %v, want %v", where, got, slices.Sorted(slices.Values(keys)))
		}
		want := map[string]string{
			"id":       `"` + UserUUID(id) + `"`,
			"logto_id": `"` + id + `"`, "username": `"d1r1c1"`, "email": `"d1r1c1@example.com"`, "name": `"d1r1c1 Admin"`,
			"phone": "null", "latest_login_at": "null", "deleted_at": "null", "suspended_at": "null",
			"suspended_by_org_id": "null", "created_by": "null",
			"organization": fmt.Sprintf(`{"id":"%s","logto_id":"%s","name":"d1r1c1","type":"customer"}`, hierarchy.OrgUUID(orgID), orgID),
			"roles":        fmt.Sprintf(`[{"id":"%s","name":"Admin"}]`, h.fixture.UserRoles["Admin"]),
			"created_at":   `"` + time.UnixMilli(sim.CreatedAt).UTC().Format(time.RFC3339Nano) + `"`,
			"updated_at":   `"` + time.UnixMilli(sim.UpdatedAt).UTC().Format(time.RFC3339Nano) + `"`,
		}
		for k, v := range want {
			if string(it[k]) != v {
				t.Errorf("%s: %s = %s, want %s", where, k, it[k], v)
			}
		}
		var cd map[string]any
		if err := json.Unmarshal(it["custom_data"], &cd); err != nil || cd["organizationId"] != orgID || cd["createdBy"] != h.orgID(t, "d1r1") {
			t.Errorf("%s: custom_data %s", where, it["custom_data"])
		}
	}

	list := listUsers(t, h, h.token(t, "d1r1c1"), nil)
	if len(list.items) != 1 {
		t.Fatalf("d1r1c1 lists %d users", len(list.items))
	}
	check("list item", list.items[0], listKeys)

	r := h.do(t, http.MethodGet, "/api/users/"+id, h.token(t, "d1r1"), nil)
	var it map[string]json.RawMessage
	if err := json.Unmarshal(r.Env.Data, &it); err != nil || r.Status != http.StatusOK {
		t.Fatalf("detail: %d %s", r.Status, r.Body)
	}
	check("detail", it, append(listKeys, "deleted_by_org_id"))
	if string(it["deleted_by_org_id"]) != "null" {
		t.Errorf("detail: deleted_by_org_id = %s", it["deleted_by_org_id"])
	}

	// can_be_impersonated only for callers holding impersonate:users, and
	// only on list items.
	imp := h.tokenWith(t, "d1r1", "read:users", "impersonate:users")
	for _, item := range listUsers(t, h, imp, nil).items {
		if string(item["can_be_impersonated"]) != "false" {
			t.Errorf("can_be_impersonated = %s for an impersonator", item["can_be_impersonated"])
		}
	}
	if r := h.do(t, http.MethodGet, "/api/users/"+id, imp, nil); strings.Contains(string(r.Body), "can_be_impersonated") {
		t.Errorf("detail carries can_be_impersonated: %s", r.Body)
	}
	if strings.Contains(string(h.get(t, "d1r1", "/api/users").Body), "can_be_impersonated") {
		t.Error("can_be_impersonated without impersonate:users")
	}
}

// userStories adds users and organization states to the fixture that
// exercise every filter, and returns the new users' ids by name.
func userStories(t *testing.T, h *harness) map[string]string {
	t.Helper()
	roles := h.fixture.UserRoles
	must := func(u logtotest.User, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	ids := map[string]string{}
	ids["ann"] = must(h.sim.CreateUser(map[string]any{
		"username": "ann", "primaryEmail": "ann.zeta@acme.test", "name": "Ann Zeta", "primaryPhone": "390721000001",
		"customData": map[string]any{"organizationId": h.orgID(t, "d1r1c1"), "userRoleIds": []string{roles["Reader"], "gone-role"},
			"createdBy": map[string]any{"user_id": h.userOf("d1r1"), "username": "d1r1", "name": "Zed Creator",
				"email": "d1r1@example.com", "organization_id": h.orgID(t, "d1r1"), "organization_name": "d1r1"}},
	}))
	ids["bob"] = must(h.sim.CreateUser(map[string]any{
		"username": "bob", "primaryEmail": "Bob@Other.test", "name": "bob ALPHA",
		"customData": map[string]any{"organizationId": h.orgID(t, "d1r1c1"), "userRoleIds": []string{roles["Support"]},
			"createdBy": h.orgID(t, "d1r1")},
	}))
	ids["carl"] = must(h.sim.CreateUser(map[string]any{
		"username": "carl", "name": "Carl Member", "customData": map[string]any{"userRoleIds": []string{roles["Admin"], roles["Reader"]}},
	}))
	if err := h.sim.AddOrganizationMembers(h.orgID(t, "d1c1"), ids["carl"]); err != nil {
		t.Fatal(err)
	}
	ids["dora"] = must(h.sim.CreateUser(map[string]any{"username": "dora", "name": "Dora Nowhere"}))
	ids["eve"] = must(h.sim.CreateUser(map[string]any{
		"username": "eve", "name": "Eve", "customData": map[string]any{"organizationId": h.orgID(t, "d2r1c1")},
	}))
	if _, err := h.sim.SetUserSuspended(ids["ann"], true); err != nil {
		t.Fatal(err)
	}
	mergeCustomData(t, h, "d1r2", map[string]any{"suspendedAt": "2025-02-03T04:05:06Z"})
	mergeCustomData(t, h, "d2r1c1", map[string]any{"deletedAt": "2025-03-04T05:06:07Z"})
	refreshUsers(t, h)
	return ids
}

func TestUsersFilters(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	s := userStories(t, h)
	owner := h.token(t, "owner")
	user := h.userOf
	list := func(q url.Values) listReply { return listUsers(t, h, owner, q) }
	byID := func(l listReply) map[string]map[string]json.RawMessage {
		out := map[string]map[string]json.RawMessage{}
		for _, it := range l.items {
			out[str(t, it, "logto_id")] = it
		}
		return out
	}

	cases := []struct {
		name string
		q    url.Values
		want []string
	}{
		{"suspended", url.Values{"status": {"suspended"}}, []string{s["ann"], user("d1r2"), user("d1r2c1")}},
		{"deleted", url.Values{"status": {"DELETED"}}, []string{user("d2r1c1"), s["eve"]}},
		{"search a name, any case", url.Values{"search": {"ALPHA"}}, []string{s["bob"]}},
		{"search an email", url.Values{"search": {"acme.TEST"}}, []string{s["ann"]}},
		{"search misses usernames", url.Values{"search": {"dora"}}, []string{s["dora"]}},
		{"search matches nothing", url.Values{"search": {"no such text"}}, []string{}},
		{"one role", url.Values{"role": {h.fixture.UserRoles["Reader"]}}, []string{s["ann"], s["carl"]}},
		{"two roles", url.Values{"role": {h.fixture.UserRoles["Reader"], h.fixture.UserRoles["Support"]}}, []string{s["ann"], s["bob"], s["carl"]}},
		{"an unknown role", url.Values{"role": {"gone-role"}}, []string{}},
		{"created by a user", url.Values{"created_by": {user("d1r1")}}, []string{s["ann"]}},
		// The fixture's users name their parent organization as creator.
		{"created by an organization", url.Values{"created_by": {h.orgID(t, "d1r1")}}, []string{s["ann"], s["bob"], user("d1r1c1"), user("d1r1c2")}},
		{"created by an invalid id", url.Values{"created_by": {"not valid!"}, "search": {"zeta"}}, []string{s["ann"]}},
		{"filters combine", url.Values{"status": {"suspended"}, "role": {h.fixture.UserRoles["Reader"]}, "search": {"ann"}}, []string{s["ann"]}},
	}
	for _, tc := range cases {
		q := tc.q
		q.Set("page_size", "100")
		got := list(q)
		if !sameSet(ids(t, got.items), tc.want) || got.pagination.TotalCount != len(tc.want) {
			t.Errorf("%s: %v (total %d), want %v", tc.name, ids(t, got.items), got.pagination.TotalCount, tc.want)
		}
	}

	all := byID(list(everyStatus()))
	expect := func(id, key, want string) {
		t.Helper()
		if got := string(all[id][key]); got != want {
			t.Errorf("%s: %s = %s, want %s", id, key, got, want)
		}
	}
	// Suspension by cascade names the suspended ancestor; the home's own
	// suspension names the home; Logto's flag dates from updatedAt.
	expect(user("d1r2c1"), "suspended_at", `"2025-02-03T04:05:06Z"`)
	expect(user("d1r2c1"), "suspended_by_org_id", `"`+h.orgID(t, "d1r2")+`"`)
	expect(user("d1r2"), "suspended_by_org_id", `"`+h.orgID(t, "d1r2")+`"`)
	ann, _ := h.sim.User(s["ann"])
	expect(s["ann"], "suspended_at", `"`+time.UnixMilli(ann.UpdatedAt).UTC().Format(time.RFC3339Nano)+`"`)
	expect(s["ann"], "suspended_by_org_id", "null")
	expect(s["eve"], "deleted_at", `"2025-03-04T05:06:07Z"`)
	expect(s["ann"], "phone", `"390721000001"`)
	expect(s["ann"], "roles", fmt.Sprintf(`[{"id":"%s","name":"Reader"}]`, h.fixture.UserRoles["Reader"]))
	expect(s["ann"], "created_by", fmt.Sprintf(`{"user_id":"%s","username":"d1r1","name":"Zed Creator","email":"d1r1@example.com","organization_id":"%s","organization_name":"d1r1"}`,
		user("d1r1"), h.orgID(t, "d1r1")))
	expect(s["carl"], "roles", fmt.Sprintf(`[{"id":"%s","name":"Admin"},{"id":"%s","name":"Reader"}]`, h.fixture.UserRoles["Admin"], h.fixture.UserRoles["Reader"]))
	expect(s["dora"], "organization", "null")
	expect(s["dora"], "roles", "[]")

	// Carl's home is his first membership, d1c1: d1 and d1c1 see him, d1r1
	// does not; Dora has no home: only the owner sees her.
	for viewer, want := range map[string][]string{"d1": {s["carl"]}, "d1c1": {s["carl"]}, "d1r1": {}, "d2": {}} {
		got := listUsers(t, h, h.token(t, viewer), url.Values{"search": {"carl"}})
		if !sameSet(ids(t, got.items), want) {
			t.Errorf("%s searching carl: %v, want %v", viewer, ids(t, got.items), want)
		}
	}
	if got := listUsers(t, h, h.token(t, "d1"), everyStatus("search", "dora")); len(got.items) != 0 {
		t.Errorf("d1 sees the user without a home: %v", ids(t, got.items))
	}
	// A deleted user is never found by id, nor listed outside status=deleted.
	if r := h.get(t, "owner", "/api/users/"+s["eve"]); r.Status != http.StatusNotFound {
		t.Errorf("owner reading a deleted user: %d %s", r.Status, r.Body)
	}
	if got := list(url.Values{"search": {"eve"}}); len(got.items) != 0 {
		t.Errorf("a deleted user listed by default: %v", ids(t, got.items))
	}
}

// userSortKey is what an item is sorted by for a sort_by value, read back
// from the served object; null reports a NULL key.
func userSortKey(t *testing.T, it map[string]json.RawMessage, sortBy string) (key string, null bool) {
	t.Helper()
	member := func(raw json.RawMessage, name string) (string, bool) {
		if string(raw) == "null" {
			return "", true
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return strings.ToLower(str(t, m, name)), false
	}
	at := func(k string) (string, bool) {
		if string(it[k]) == "null" {
			return "", true
		}
		v, err := time.Parse(time.RFC3339Nano, str(t, it, k))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%020d", v.UnixNano()), false
	}
	switch sortBy {
	case "name", "email", "username":
		return strings.ToLower(str(t, it, sortBy)), false
	case "organization":
		return member(it["organization"], "name")
	case "creator_name":
		return member(it["created_by"], "name")
	case "status":
		return at("suspended_at")
	case "updated_at", "latest_login_at":
		return at(sortBy)
	}
	return at("created_at")
}

func TestUsersSortEveryKey(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	userStories(t, h)
	owner := h.token(t, "owner")
	keys := []string{"name", "email", "username", "created_at", "updated_at", "latest_login_at", "organization", "creator_name", "status", "", "bogus"}
	for _, sortBy := range keys {
		for _, dir := range []string{"asc", "desc"} {
			q := everyStatus("sort_by", sortBy, "sort_direction", dir)
			got := listUsers(t, h, owner, q)
			if len(got.items) != 15 { // 10 fixture users but the owner's, 5 stories
				t.Fatalf("sort_by=%q: %d users", sortBy, len(got.items))
			}
			// Unknown or absent sort_by: created_at descending whatever the
			// direction, with sort_by echoed (upstream).
			desc := dir == "desc"
			if !slices.Contains(keys[:9], sortBy) {
				desc = true
			}
			if sortBy != "" && (got.pagination.SortBy != sortBy || got.pagination.SortDirection != dir) {
				t.Errorf("sort_by=%q %s: pagination echoes %q %q", sortBy, dir, got.pagination.SortBy, got.pagination.SortDirection)
			}
			for i := 1; i < len(got.items); i++ {
				a, b := got.items[i-1], got.items[i]
				ka, na := userSortKey(t, a, sortBy)
				kb, nb := userSortKey(t, b, sortBy)
				c := 0
				switch {
				case na != nb && na:
					c = 1 // NULLs last ascending
				case na != nb:
					c = -1
				case !na:
					c = strings.Compare(ka, kb)
				}
				if c == 0 {
					c = strings.Compare(str(t, a, "logto_id"), str(t, b, "logto_id"))
				}
				if desc {
					c = -c
				}
				if c > 0 {
					t.Errorf("sort_by=%q %s: %s (%q) before %s (%q)", sortBy, dir,
						str(t, a, "logto_id"), ka, str(t, b, "logto_id"), kb)
				}
			}
		}
	}
	// Pages partition the order.
	whole := ids(t, listUsers(t, h, owner, everyStatus("sort_by", "name")).items)
	var paged []string
	for page := 1; page <= 6; page++ {
		q := everyStatus("sort_by", "name", "page", fmt.Sprint(page))
		q.Set("page_size", "3")
		p := listUsers(t, h, owner, q)
		paged = append(paged, ids(t, p.items)...)
		if p.pagination.TotalCount != 15 || p.pagination.TotalPages != 5 || p.pagination.HasNext != (page < 5) {
			t.Errorf("page %d: pagination %+v", page, p.pagination)
		}
	}
	if !slices.Equal(paged, whole) {
		t.Errorf("pages of 3: %v, whole: %v", paged, whole)
	}
}

func TestUsersBadInputIsNeverAServerError(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	owner, d1 := h.token(t, "owner"), h.token(t, "d1")
	long := strings.Repeat("x", 5000)
	queries := []string{
		"page=-1&page_size=abc", "page=99999999999999999999", "page=2147483647&page_size=100", "page_size=0",
		"sort_by=%3Cscript%3E&sort_direction=DESC", "status=&status=%00", "search=%00", "search=%ff%fe",
		"search=" + long, "search=%25_", "organization_id=../..&organization_id=" + long, "organization_id=",
		"role=" + long + "&role=", "created_by=%00&created_by=a%20b", "search=ab%00cd", "sort_by=status&page=3",
		strings.Repeat("organization_id=abc&", 500), "%zz=1&page=%zz", "search=%E2%80%A8",
	}
	for _, tok := range []string{owner, d1} {
		for _, q := range queries {
			r := h.do(t, http.MethodGet, "/api/users?"+q, tok, nil)
			if r.Status != http.StatusOK || r.Env.Message != "users retrieved successfully" {
				t.Errorf("GET /api/users?%.60s: %d %.200s", q, r.Status, r.Body)
			}
		}
		for _, id := range []string{"%00", "..", "%2e%2e", long, "%ff", "a%20b", "%E2%80%A8", "totals"} {
			r := h.do(t, http.MethodGet, "/api/users/"+id, tok, nil)
			if r.Status >= 500 || r.Status == http.StatusOK {
				t.Errorf("GET /api/users/%.40s: %d %.200s", id, r.Status, r.Body)
			}
		}
	}
}

func TestUsersReportXCacheAndMetrics(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := h.get(t, "owner", "/api/users")
	if r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("X-Cache = %q, want HIT", r.Header.Get("X-Cache"))
	}
	m := string(h.do(t, http.MethodGet, "/metrics", "", nil).Body)
	for _, want := range []string{`logto_proxy_cache_requests_total{result="hit",view="users"}`, `logto_proxy_snapshot_generation{view="users"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestUserDetailPathIsDecodedAndExact checks the detail route reads its id the
// way the organization routes do: percent-encoding is decoded (so an encoded
// own id is still the caller's own), and a path with more segments is a route
// that is not served, not a missing user.
func TestUserDetailPathIsDecodedAndExact(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	id := h.userOf("d1r1c1")
	tok := h.tokenWith(t, "d1r1c1") // no read:users: only self can pass
	encoded := "%" + strings.ToUpper(hex.EncodeToString([]byte(id[:1]))) + id[1:]
	if r := h.do(t, http.MethodGet, "/api/users/"+encoded, tok, nil); r.Status != http.StatusOK || r.Env.Message != "user retrieved successfully" {
		t.Errorf("own id percent-encoded: %d %s, want 200", r.Status, r.Body)
	}
	owner := h.token(t, "owner")
	for _, path := range []string{"/api/users/" + id + "/roles", "/api/users/" + id + "/", "/api/users/a/b"} {
		if r := h.do(t, http.MethodGet, path, owner, nil); r.Status != http.StatusNotFound || r.Env.Message != "api not found" {
			t.Errorf("GET %s: %d %s, want 404 api not found", path, r.Status, r.Body)
		}
	}
}
