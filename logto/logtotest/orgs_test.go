package logtotest_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

func TestOrganizationListPaging(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	created := createOrgs(t, s, 45, "Org ")
	a := newAPI(t, s)

	res := must(t, a.get("/organizations"), http.StatusOK)
	if got := len(ids(t, res)); got != 20 {
		t.Errorf("default page size: %d items, want 20", got)
	}
	if res.header.Get("Total-Number") != "45" {
		t.Errorf("Total-Number = %q", res.header.Get("Total-Number"))
	}
	base := "<http://" + strings.TrimPrefix(s.URL(), "http://") + "/organizations?page="
	wantLinks := []string{base + `1>; rel="first"`, base + `3>; rel="last"`, base + `2>; rel="next"`}
	if got := res.header.Values("Link"); !slices.Equal(got, wantLinks) {
		t.Errorf("Link = %q, want %q", got, wantLinks)
	}

	// Every page together is every organization once.
	var all []string
	for page := 1; page <= 5; page++ {
		res := must(t, a.get("/organizations?page_size=10&page="+itoa(page)), http.StatusOK)
		all = append(all, ids(t, res)...)
	}
	if len(all) != 45 || !sameSet(all, created) {
		t.Errorf("paging returned %d ids, not the 45 created", len(all))
	}

	res = must(t, a.get("/organizations?q=org&page=2&page_size=10"), http.StatusOK)
	got := res.header.Values("Link")
	origin := "<" + s.URL() + "/organizations?q=org&page="
	want := []string{origin + `1&page_size=10>; rel="first"`, origin + `5&page_size=10>; rel="last"`,
		origin + `1&page_size=10>; rel="prev"`, origin + `3&page_size=10>; rel="next"`}
	if !slices.Equal(got, want) {
		t.Errorf("Link = %q\nwant %q", got, want)
	}
	for _, l := range got {
		if strings.Contains(l, "/api/") {
			t.Errorf("Link keeps the /api prefix: %s", l)
		}
	}

	res = must(t, a.get("/organizations?page=9&page_size=10"), http.StatusOK)
	if string(res.body) != "[]" || res.header.Get("Total-Number") != "45" {
		t.Errorf("past the end: %s, Total-Number %q", res.body, res.header.Get("Total-Number"))
	}
	res = must(t, a.get("/organizations?page_size=100"), http.StatusOK)
	if len(ids(t, res)) != 45 {
		t.Errorf("page_size=100 returned %d", len(ids(t, res)))
	}
	for _, q := range []string{"page_size=0", "page_size=101", "page=0", "page=-1", "page_size=abc"} {
		res := a.get("/organizations?" + q)
		if res.status != http.StatusBadRequest ||
			string(res.body) != `{"code":"guard.invalid_pagination","message":"The request pagination value is invalid."}` {
			t.Errorf("%s: %d %s", q, res.status, res.body)
		}
	}
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func TestOrganizationListOrder(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	created := createOrgs(t, s, 60, "Org ")
	a := newAPI(t, s)
	first := ids(t, must(t, a.get("/organizations?page_size=100"), http.StatusOK))
	again := ids(t, must(t, a.get("/organizations?page_size=100"), http.StatusOK))
	if !slices.Equal(first, again) {
		t.Errorf("order changed between requests without a fault")
	}
	if slices.Equal(first, created) {
		t.Errorf("organizations listed in insertion order")
	}
	if slices.IsSorted(first) {
		t.Errorf("organizations listed sorted by id")
	}
	var names []string
	for _, o := range listOrgs(t, a, "/organizations?page_size=100") {
		names = append(names, o.Name)
	}
	if slices.IsSorted(names) {
		t.Errorf("organizations listed sorted by name")
	}
}

func listOrgs(t *testing.T, a *api, path string) []logtotest.Organization {
	t.Helper()
	var orgs []logtotest.Organization
	must(t, a.get(path), http.StatusOK).json(t, &orgs)
	return orgs
}

func TestOrganizationSearch(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	createOrgs(t, s, 5, "Alpha ")
	createOrgs(t, s, 3, "Beta ")
	a := newAPI(t, s)
	if got := listOrgs(t, a, "/organizations?q=BETA"); len(got) != 3 {
		t.Errorf("q=BETA: %d results, want 3 (case-insensitive)", len(got))
	}
	// % and _ are wildcards, as Logto does not escape them.
	if got := listOrgs(t, a, "/organizations?q=al_ha%253"); len(got) != 1 || got[0].Name != "Alpha 3" {
		t.Errorf("q with wildcards: %+v", got)
	}
	id := listOrgs(t, a, "/organizations?q=Beta%201")[0].ID
	if got := listOrgs(t, a, "/organizations?q="+id); len(got) != 1 || got[0].ID != id {
		t.Errorf("q by id: %+v", got)
	}
	res := must(t, a.get("/organizations?q=zzz"), http.StatusOK)
	if string(res.body) != "[]" || res.header.Get("Total-Number") != "0" {
		t.Errorf("no match: %s %q", res.body, res.header.Get("Total-Number"))
	}
}

func TestOrganizationCRUD(t *testing.T) {
	s := newSim(t, logtotest.Options{Clock: fixedNow})
	a := newAPI(t, s)

	res := must(t, a.do(http.MethodPost, "/organizations", map[string]any{
		"name": "Acme", "customData": map[string]any{"type": "customer", "vat": "IT1", "address": "Via 1"},
	}), http.StatusCreated)
	if res.header.Get("ETag") != "" {
		t.Errorf("201 carries an ETag")
	}
	wantKeys := "tenantId,id,name,description,customData,isMfaRequired,color,branding,customCss,createdAt"
	if got := strings.Join(keys(t, res.body), ","); got != wantKeys {
		t.Errorf("organization keys = %s", got)
	}
	var org logtotest.Organization
	res.json(t, &org)
	if len(org.ID) != 12 || strings.Trim(org.ID, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		t.Errorf("id %q is not 12 chars of [0-9a-z]", org.ID)
	}
	if org.TenantID != "default" || org.Description != nil || org.CreatedAt != fixedNow().UnixMilli() ||
		string(org.Color) != "{}" || string(org.Branding) != "{}" {
		t.Errorf("created = %+v", org)
	}

	res = must(t, a.do(http.MethodPatch, "/organizations/"+org.ID, map[string]any{
		"customData": map[string]any{"type": "customer", "city": "Pesaro"}, "description": "d",
	}), http.StatusOK)
	res.json(t, &org)
	if string(org.CustomData) != `{"city":"Pesaro","type":"customer"}` || org.Description == nil || *org.Description != "d" {
		t.Errorf("PATCH must replace customData wholesale: %s", res.body)
	}
	must(t, a.get("/organizations/"+org.ID), http.StatusOK).json(t, &org)
	if string(org.CustomData) != `{"city":"Pesaro","type":"customer"}` || org.Name != "Acme" {
		t.Errorf("after PATCH: %+v", org)
	}

	res = a.do(http.MethodPatch, "/organizations/"+org.ID, map[string]any{"customData": []int{1}})
	if res.status != http.StatusBadRequest || res.object(t)["code"] != "guard.invalid_input" {
		t.Errorf("array customData: %d %s", res.status, res.body)
	}
	res = a.do(http.MethodPost, "/organizations", map[string]any{"description": "no name"})
	if res.status != http.StatusBadRequest || res.object(t)["code"] != "guard.invalid_input" {
		t.Errorf("missing name: %d %s", res.status, res.body)
	}

	res = must(t, a.do(http.MethodDelete, "/organizations/"+org.ID, nil), http.StatusNoContent)
	if len(res.body) != 0 {
		t.Errorf("204 with a body")
	}
	res = must(t, a.get("/organizations/"+org.ID), http.StatusNotFound)
	want := `{"code":"entity.not_exists_with_id","message":"The organizations with ID ` + "`" + org.ID + "`" + ` does not exist."}`
	if string(res.body) != want {
		t.Errorf("404 body = %s", res.body)
	}
	must(t, a.do(http.MethodDelete, "/organizations/"+org.ID, nil), http.StatusNotFound)
	must(t, a.do(http.MethodPatch, "/organizations/"+org.ID, map[string]any{"name": "x"}), http.StatusNotFound)
}

func TestETag(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id := createOrgs(t, s, 1, "Org ")[0]
	a := newAPI(t, s)
	res := must(t, a.get("/organizations/"+id), http.StatusOK)
	tag := res.header.Get("ETag")
	if !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) {
		t.Fatalf("ETag = %q", tag)
	}
	for _, inm := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		res := a.do(http.MethodGet, "/organizations/"+id, nil, "If-None-Match", inm)
		if res.status != http.StatusNotModified || len(res.body) != 0 {
			t.Errorf("If-None-Match %s: %d %q", inm, res.status, res.body)
		}
	}
	if res := a.do(http.MethodGet, "/organizations/"+id, nil, "If-None-Match", `"other"`); res.status != http.StatusOK {
		t.Errorf("non-matching If-None-Match: %d", res.status)
	}
	if _, err := s.UpdateOrganization(id, map[string]any{"name": "Renamed"}); err != nil {
		t.Fatal(err)
	}
	res = a.do(http.MethodGet, "/organizations/"+id, nil, "If-None-Match", tag)
	if res.status != http.StatusOK || res.header.Get("ETag") == tag {
		t.Errorf("after a change: %d, ETag %q", res.status, res.header.Get("ETag"))
	}
	list := must(t, a.get("/organizations"), http.StatusOK)
	if list.header.Get("ETag") == "" {
		t.Errorf("list without ETag")
	}
	res = a.do(http.MethodGet, "/organizations", nil, "If-None-Match", list.header.Get("ETag"))
	if res.status != http.StatusNotModified || res.header.Get("Total-Number") == "" {
		t.Errorf("list 304: %d, Total-Number %q", res.status, res.header.Get("Total-Number"))
	}
	if res := a.get("/organizations/nope"); res.header.Get("ETag") != "" {
		t.Errorf("404 carries an ETag")
	}
}

func TestShowFeatured(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id := createOrgs(t, s, 1, "Org ")[0]
	var users []string
	for i := range 4 {
		users = append(users, createUser(t, s, map[string]any{"username": "u" + itoa(i), "name": "U"}).ID)
	}
	if err := s.AddOrganizationMembers(id, users...); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)
	var items []struct {
		ID            string `json:"id"`
		UsersCount    int    `json:"usersCount"`
		FeaturedUsers []struct {
			ID     string  `json:"id"`
			Avatar *string `json:"avatar"`
			Name   string  `json:"name"`
		} `json:"featuredUsers"`
	}
	must(t, a.get("/organizations?showFeatured=true"), http.StatusOK).json(t, &items)
	if len(items) != 1 || items[0].UsersCount != 4 || len(items[0].FeaturedUsers) != 3 {
		t.Errorf("featured = %+v", items)
	}
	plain := must(t, a.get("/organizations"), http.StatusOK)
	if strings.Contains(string(plain.body), "usersCount") {
		t.Errorf("usersCount without showFeatured")
	}
}
