package logtotest_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

func TestMembers(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	org := createOrgs(t, s, 1, "Org ")[0]
	var users []string
	for _, name := range []string{"zed", "amy", "kim", "bob"} {
		users = append(users, createUser(t, s, map[string]any{"username": name, "primaryEmail": name + "@x.io"}).ID)
	}
	zeta, err := s.CreateOrganizationRole(logtotest.OrganizationRoleSpec{Name: "Zeta"})
	if err != nil {
		t.Fatal(err)
	}
	alpha, err := s.CreateOrganizationRole(logtotest.OrganizationRoleSpec{Name: "Alpha"})
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)

	res := must(t, a.do(http.MethodPost, "/organizations/"+org+"/users", map[string]any{"userIds": users}), http.StatusCreated)
	if string(res.body) != `{"userIds":["`+strings.Join(users, `","`)+`"]}` {
		t.Errorf("POST members echo = %s", res.body)
	}
	must(t, a.do(http.MethodPost, "/organizations/"+org+"/users/"+users[0]+"/roles",
		map[string]any{"organizationRoleIds": []string{zeta.ID}, "organizationRoleNames": []string{"Alpha"}}), http.StatusCreated)

	var members []logtotest.Member
	res = must(t, a.get("/organizations/"+org+"/users"), http.StatusOK)
	res.json(t, &members)
	var got []string
	for _, m := range members {
		got = append(got, m.ID)
	}
	want := slices.Sorted(slices.Values(users))
	if !slices.Equal(got, want) {
		t.Errorf("members %v, want ordered by id %v", got, want)
	}
	if res.header.Get("Total-Number") != "4" {
		t.Errorf("Total-Number = %q", res.header.Get("Total-Number"))
	}
	if strings.Contains(string(res.body), "hasPassword") {
		t.Errorf("member items must not carry hasPassword")
	}
	for _, m := range members {
		switch {
		case m.ID == users[0]:
			if len(m.OrganizationRoles) != 2 || m.OrganizationRoles[0].Name != "Alpha" || m.OrganizationRoles[1].ID != zeta.ID {
				t.Errorf("roles = %+v, want sorted by name", m.OrganizationRoles)
			}
		case m.OrganizationRoles == nil || len(m.OrganizationRoles) != 0:
			t.Errorf("member without roles: %+v", m.OrganizationRoles)
		}
	}
	if !strings.Contains(string(res.body), `"organizationRoles":[]`) {
		t.Errorf("empty organizationRoles must be []")
	}

	var filtered []logtotest.Member
	must(t, a.get("/organizations/"+org+"/users?organizationRoleId="+alpha.ID), http.StatusOK).json(t, &filtered)
	if len(filtered) != 1 || filtered[0].ID != users[0] {
		t.Errorf("organizationRoleId filter = %+v", filtered)
	}
	must(t, a.get("/organizations/"+org+"/users?q=KIM"), http.StatusOK).json(t, &filtered)
	if len(filtered) != 1 || filtered[0].ID != users[2] {
		t.Errorf("q filter = %+v", filtered)
	}

	res = must(t, a.get("/organizations/unknown/users"), http.StatusOK)
	if string(res.body) != "[]" || res.header.Get("Total-Number") != "0" {
		t.Errorf("unknown organization: %s %q", res.body, res.header.Get("Total-Number"))
	}
	res = a.do(http.MethodPost, "/organizations/"+org+"/users", map[string]any{"userIds": []string{"ghost"}})
	if res.status != http.StatusUnprocessableEntity || res.object(t)["code"] != "entity.relation_foreign_key_not_found" {
		t.Errorf("unknown user: %d %s", res.status, res.body)
	}
	res = a.do(http.MethodPost, "/organizations/"+org+"/users", map[string]any{"userIds": []string{}})
	if res.status != http.StatusBadRequest {
		t.Errorf("empty userIds: %d", res.status)
	}

	// Per-member roles and scopes.
	var roles []logtotest.OrganizationRole
	rr := must(t, a.get("/organizations/"+org+"/users/"+users[0]+"/roles"), http.StatusOK)
	rr.json(t, &roles)
	if len(roles) != 2 || roles[0].Name != "Alpha" || rr.header.Get("Total-Number") != "" {
		t.Errorf("member roles without paging = %+v (Total-Number %q)", roles, rr.header.Get("Total-Number"))
	}
	rr = must(t, a.get("/organizations/"+org+"/users/"+users[0]+"/roles?page=1&page_size=1"), http.StatusOK)
	if len(ids(t, rr)) != 1 || rr.header.Get("Total-Number") != "2" {
		t.Errorf("member roles paged: %s %q", rr.body, rr.header.Get("Total-Number"))
	}
	res = a.do(http.MethodPost, "/organizations/"+org+"/users/"+users[1]+"/roles",
		map[string]any{"organizationRoleNames": []string{"Nope"}})
	if res.status != http.StatusUnprocessableEntity || res.object(t)["code"] != "organization.role_names_not_found" {
		t.Errorf("unknown role name: %d %s", res.status, res.body)
	}
	must(t, a.do(http.MethodDelete, "/organizations/"+org+"/users/"+users[0]+"/roles/"+zeta.ID, nil), http.StatusNoContent)
	must(t, a.do(http.MethodPut, "/organizations/"+org+"/users/"+users[1]+"/roles",
		map[string]any{"organizationRoleIds": []string{zeta.ID}}), http.StatusNoContent)

	// Membership replacement and removal.
	must(t, a.do(http.MethodPut, "/organizations/"+org+"/users", map[string]any{"userIds": users[:2]}), http.StatusNoContent)
	must(t, a.do(http.MethodDelete, "/organizations/"+org+"/users/"+users[0], nil), http.StatusNoContent)
	if got := ids(t, must(t, a.get("/organizations/"+org+"/users"), http.StatusOK)); !slices.Equal(got, users[1:2]) {
		t.Errorf("after PUT and DELETE: %v", got)
	}
	res = a.get("/organizations/" + org + "/users/" + users[0] + "/roles")
	if res.status != http.StatusUnprocessableEntity || res.object(t)["code"] != "organization.require_membership" {
		t.Errorf("roles of a non-member: %d %s", res.status, res.body)
	}
}

func TestMemberScopes(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	f, err := s.SeedFixture()
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)
	var scopes []logtotest.OrganizationScope
	must(t, a.get("/organizations/"+f.Orgs["d1"]+"/users/"+f.Users["d1"]+"/scopes"), http.StatusOK).json(t, &scopes)
	var names []string
	for _, sc := range scopes {
		names = append(names, sc.Name)
	}
	want := []string{"manage:customers", "manage:resellers", "read:customers", "read:resellers"}
	if !slices.Equal(names, want) {
		t.Errorf("distributor scopes = %v, want %v", names, want)
	}
}

func TestUserCRUD(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	res := must(t, a.do(http.MethodPost, "/users", map[string]any{
		"username": "alice", "primaryEmail": "alice@example.com", "name": "Alice", "password": "s3cret!",
		"customData": map[string]any{"organizationId": "o1", "userRoleIds": []string{"r1"}},
	}), http.StatusOK)
	wantKeys := "id,username,primaryEmail,primaryPhone,name,avatar,customData,identities,lastSignInAt,createdAt,updatedAt,profile,applicationId,cimdClientId,isSuspended,hasPassword"
	if got := strings.Join(keys(t, res.body), ","); got != wantKeys {
		t.Errorf("user keys = %s", got)
	}
	if strings.Contains(string(res.body), "s3cret") {
		t.Errorf("password echoed")
	}
	var u logtotest.User
	res.json(t, &u)
	if !u.HasPassword || u.Username == nil || *u.Username != "alice" || len(u.ID) != 12 {
		t.Errorf("created user = %+v", u)
	}
	res = a.do(http.MethodPost, "/users", map[string]any{"username": "ALICE"})
	if res.status != http.StatusUnprocessableEntity || res.object(t)["code"] != "user.username_already_in_use" {
		t.Errorf("duplicate username: %d %s", res.status, res.body)
	}
	res = a.do(http.MethodPost, "/users", map[string]any{"username": "1bad"})
	if res.status != http.StatusBadRequest {
		t.Errorf("bad username: %d %s", res.status, res.body)
	}

	res = must(t, a.get("/users/"+u.ID+"?includeSsoIdentities=true"), http.StatusOK)
	if !strings.HasSuffix(string(res.body), `"ssoIdentities":[]}`) {
		t.Errorf("includeSsoIdentities: %s", res.body)
	}
	res = must(t, a.get("/users/nope"), http.StatusNotFound)
	if string(res.body) != `{"code":"entity.not_found","message":"The resource does not exist."}` {
		t.Errorf("user 404 = %s", res.body)
	}

	res = must(t, a.do(http.MethodPatch, "/users/"+u.ID+"/custom-data",
		map[string]any{"customData": map[string]any{"createdBy": "o2"}}), http.StatusOK)
	if string(res.body) != `{"createdBy":"o2","organizationId":"o1","userRoleIds":["r1"]}` {
		t.Errorf("custom-data PATCH must merge: %s", res.body)
	}
	res = must(t, a.do(http.MethodPatch, "/users/"+u.ID, map[string]any{"customData": map[string]any{"x": 1}, "name": "A"}), http.StatusOK)
	res.json(t, &u)
	if string(u.CustomData) != `{"x":1}` || *u.Name != "A" || *u.Username != "alice" {
		t.Errorf("user PATCH must replace customData: %s", res.body)
	}
	res = must(t, a.do(http.MethodPatch, "/users/"+u.ID+"/is-suspended", map[string]any{"isSuspended": true}), http.StatusOK)
	res.json(t, &u)
	if !u.IsSuspended {
		t.Errorf("not suspended")
	}
	must(t, a.do(http.MethodDelete, "/users/"+u.ID, nil), http.StatusNoContent)
	must(t, a.get("/users/"+u.ID), http.StatusNotFound)
	must(t, a.get("/users/"+u.ID+"/organizations"), http.StatusNotFound)
}

func TestUserSearch(t *testing.T) {
	tick := fixedNow()
	clock := func() time.Time { tick = tick.Add(time.Second); return tick }
	s := newSim(t, logtotest.Options{Clock: clock})
	var created []logtotest.User
	for _, n := range []string{"alice", "bob", "carol", "dave", "Alina"} {
		created = append(created, createUser(t, s, map[string]any{"username": n, "primaryEmail": strings.ToLower(n) + "@acme.io", "name": n}))
	}
	a := newAPI(t, s)
	list := func(query string) []string {
		t.Helper()
		return ids(t, must(t, a.get("/users?"+query), http.StatusOK))
	}
	idOf := func(i int) string { return created[i].ID }

	if got := list(""); !slices.Equal(got, []string{idOf(4), idOf(3), idOf(2), idOf(1), idOf(0)}) {
		t.Errorf("order = %v, want newest first", got)
	}
	if got := list("search=" + url.QueryEscape("%ali%")); !sameSet(got, []string{idOf(0), idOf(4)}) {
		t.Errorf("search %%ali%% = %v", got)
	}
	if got := list("search=ali"); len(got) != 0 {
		t.Errorf("like without %% must match whole values: %v", got)
	}
	if got := list("search.username=" + url.QueryEscape("%ali%") + "&isCaseSensitive=true"); !slices.Equal(got, []string{idOf(0)}) {
		t.Errorf("case-sensitive = %v", got)
	}
	if got := list("search.primaryEmail=" + url.QueryEscape("bob@acme.io") + "&mode.primaryEmail=exact"); !slices.Equal(got, []string{idOf(1)}) {
		t.Errorf("exact email = %v", got)
	}
	batch := "search.id=" + idOf(1) + "&search.id=" + strings.ToUpper(idOf(3)) + "&search.id=nope&mode.id=exact&page_size=100"
	if got := list(batch); !sameSet(got, []string{idOf(1), idOf(3)}) {
		t.Errorf("batch by ids = %v", got)
	}
	if got := list("search.username=" + url.QueryEscape("%a%") + "&search.name=" + url.QueryEscape("%o%") + "&joint=and"); !sameSet(got, []string{idOf(2)}) {
		t.Errorf("joint=and = %v", got)
	}
	if got := list("search.username=" + url.QueryEscape("^(bob|dave)$") + "&mode=posix"); !sameSet(got, []string{idOf(1), idOf(3)}) {
		t.Errorf("posix = %v", got)
	}
	for _, bad := range []string{
		"search.id=a&search.id=b", "mode=fuzzy&search=x", "search.foo=x", "search.a.b=x",
		"search=x&joint=xor", "search=" + url.QueryEscape("%a%") + "&mode=similar_to",
	} {
		res := a.get("/users?" + bad)
		if res.status != http.StatusBadRequest || res.object(t)["code"] != "request.invalid_input" {
			t.Errorf("%s: %d %s", bad, res.status, res.body)
		}
	}
	res := must(t, a.get("/users?page_size=2&page=2"), http.StatusOK)
	if len(ids(t, res)) != 2 || res.header.Get("Total-Number") != "5" {
		t.Errorf("paged users: %s", res.body)
	}
	must(t, a.get("/users?page_size=101"), http.StatusBadRequest)
}

func TestUserOrganizationsAndRoles(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	f, err := s.SeedFixture()
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)
	res := must(t, a.get("/users/"+f.Users["d1r1"]+"/organizations"), http.StatusOK)
	var orgs []logtotest.OrganizationWithRoles
	res.json(t, &orgs)
	if len(orgs) != 1 || orgs[0].ID != f.Orgs["d1r1"] || orgs[0].Name != "d1r1" ||
		len(orgs[0].OrganizationRoles) != 1 || orgs[0].OrganizationRoles[0].Name != "Reseller" {
		t.Errorf("user organizations = %s", res.body)
	}
	if res.header.Get("Total-Number") != "" || res.header.Get("Link") != "" {
		t.Errorf("user organizations must not be paged")
	}
	var roles []logtotest.Role
	must(t, a.get("/users/"+f.Users["d1r1"]+"/roles"), http.StatusOK).json(t, &roles)
	if len(roles) != 1 || roles[0].Name != "Admin" || roles[0].Type != "User" {
		t.Errorf("user roles = %+v", roles)
	}
	var scopes []struct {
		Name     string             `json:"name"`
		Resource logtotest.Resource `json:"resource"`
	}
	must(t, a.get("/roles/"+roles[0].ID+"/scopes"), http.StatusOK).json(t, &scopes)
	if len(scopes) == 0 || scopes[0].Resource.Indicator != logtotest.ProxyAPIIndicator {
		t.Errorf("role scopes = %+v", scopes)
	}
	must(t, a.get("/users/nope/roles"), http.StatusNotFound)
	must(t, a.get("/users/"+f.Users["d1r1"]+"/roles?page=0"), http.StatusBadRequest)
	res = must(t, a.do(http.MethodPost, "/users/"+f.Users["d1r1"]+"/roles",
		map[string]any{"roleIds": []string{f.UserRoles["Reader"]}}), http.StatusCreated)
	must(t, a.get("/users/"+f.Users["d1r1"]+"/roles"), http.StatusOK).json(t, &roles)
	if len(roles) != 2 {
		t.Errorf("after assigning Reader: %+v", roles)
	}
}
