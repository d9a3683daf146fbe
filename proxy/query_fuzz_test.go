package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for what a caller puts in a URL: the query of every list
// route, and the id of every detail route. They run against the whole
// service (the end-to-end harness: simulator, Redis, the real HTTP stack)
// on a messy tenant, as a handful of personas of both kinds of token, and
// check the answers against the visibility model of isolation_test.go:
// whatever arrives, the answer is a clean envelope (never a 5xx), matches
// the OpenAPI document, and serves nothing outside the caller's scope. The
// seed corpora (f.Add and testdata/fuzz/<target>) run with the ordinary
// tests; `go test -fuzz FuzzListQuery ./proxy` explores further.

// fuzzTenant is the service and the model the fuzz targets share.
type fuzzTenant struct {
	h        *harness
	v        *visibility
	personas []persona
	client   *http.Client // the harness's, with a timeout: a hang is a failure
}

func newFuzzTenant(f *testing.F) *fuzzTenant {
	h := newHarness(f, harnessOptions{})
	users := seedMessyTenant(f, h, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.view.Refresh(ctx); err != nil {
		f.Fatal(err)
	}
	if err := h.users.Refresh(ctx); err != nil {
		f.Fatal(err)
	}
	snap, err := h.view.Current(ctx)
	if err != nil {
		f.Fatal(err)
	}
	v := &visibility{tree: snap.Tree, homes: homesOf(f, h.sim, users)}
	orgs := append(allIDs(snap.Tree), "not-in-the-tree")
	return &fuzzTenant{h: h, v: v, personas: randomPersonas(f, h, rand.New(rand.NewPCG(5, 0xf22)), orgs, 12),
		client: &http.Client{Transport: h.http.Client().Transport, Timeout: 10 * time.Second}}
}

// persona picks one of the tenant's personas.
func (ft *fuzzTenant) persona(i uint8) persona { return ft.personas[int(i)%len(ft.personas)] }

// get sends a GET of a raw request target (path and query, already
// escaped) and returns the answer; an answer in the envelope must match
// the OpenAPI document.
func (ft *fuzzTenant) get(t *testing.T, target, token string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ft.h.http.URL+target, nil)
	if err != nil {
		// Not a URL Go would send (a malformed escape): send it verbatim.
		base, _ := url.Parse(ft.h.http.URL)
		path, query, _ := strings.Cut(target, "?")
		req = &http.Request{Method: http.MethodGet, Header: http.Header{}, Host: base.Host,
			URL: &url.URL{Scheme: base.Scheme, Host: base.Host, Opaque: path, RawQuery: query}}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ft.client.Do(req)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	defer resp.Body.Close()
	r := reply{Status: resp.StatusCode, Header: resp.Header}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if r.Status >= 500 {
		t.Fatalf("GET %q: %d %s", target, r.Status, r.Body)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(r.Body, &r.Env); err != nil || r.Env.Code != r.Status || r.Env.Message == "" {
			t.Fatalf("GET %q: %d with a body that is not a clean envelope: %s", target, r.Status, r.Body)
		}
		checkContract(t, req, r.Status, r.Header, r.Body)
	}
	return r
}

// fuzzListRoutes are the list routes the query fuzzer reads.
var fuzzListRoutes = append(isolationOrgRoutes, isolationRoute{"/api/users", "users", 0})

// FuzzListQuery sends arbitrary queries to every list route. A query never
// gets a 400 (bad values fall back to the upstream's defaults) nor a 5xx:
// the answer is the list (200) or the route's 403; a list holds only what
// the caller may see, at most page_size items, with a coherent pagination
// object.
func FuzzListQuery(f *testing.F) {
	ft := newFuzzTenant(f)
	for _, q := range []string{"", "page=0&page_size=0", "page=-1&page_size=101", "page=99999999999999999999", "page_size=1&page=3",
		"status=deleted&status=enabled&status=suspended&status=bogus", "search=%25&search=_", "search=%zz", "sort_by=name&sort_direction=DESC",
		"sort_by=creator_name&sort_direction=desc", "organization_id=" + ft.v.tree.OwnerID() + "&include_hierarchy=true",
		"organization_id=..%2F..&include_hierarchy=1", "created_by=%00", "type=owner", "type=customer&name=d1r1c1", "role=x&role=y",
		"a=%zz&page_size=2", "&&&==&", "page_size=100&page=1&page=2", "search=" + strings.Repeat("é", 300)} {
		for route := range fuzzListRoutes {
			f.Add(uint8(route), uint8(route*3), q)
		}
	}
	f.Fuzz(func(t *testing.T, route, who uint8, query string) {
		rt := fuzzListRoutes[int(route)%len(fuzzListRoutes)]
		ps := ft.persona(who)
		target := rt.path + "?" + wireSafe(query, "&=%+,;:@/?!$'()*")
		r := ft.get(t, target, ps.token)
		switch r.Status {
		case http.StatusForbidden:
			return
		case http.StatusOK:
		default:
			t.Fatalf("GET %q as %s: %d %s", target, ps.name, r.Status, r.Body)
		}
		list := decodeList(t, r, rt.key)
		pg := list.pagination
		if pg.Page < 1 || pg.PageSize < 1 || pg.PageSize > 100 || len(list.items) > pg.PageSize ||
			pg.TotalPages != (pg.TotalCount+pg.PageSize-1)/pg.PageSize || pg.HasNext != (pg.Page < pg.TotalPages) {
			t.Fatalf("GET %q: pagination %+v with %d items", target, pg, len(list.items))
		}
		for _, id := range ids(t, list.items) {
			o, known := ft.v.tree.Org(id)
			switch {
			case rt.key == "users" && !ft.v.listsUser(ps.p, id):
				t.Fatalf("GET %q as %s served user %s", target, ps.name, id)
			case rt.key != "users" && (!known || !ft.v.sees(ps.p, id) || rt.typ != 0 && o.Type != rt.typ):
				t.Fatalf("GET %q as %s served organization %s", target, ps.name, id)
			}
		}
	})
}

// fuzzDetailRoutes are the detail routes the id fuzzer reads.
var fuzzDetailRoutes = []string{"customers", "resellers", "distributors", "users"}

// FuzzPathID sends arbitrary ids, escaped or raw, to every detail route.
// The answer is a 4xx or the organization or user itself (200), which the
// caller must be allowed to see; never a 5xx.
func FuzzPathID(f *testing.F) {
	ft := newFuzzTenant(f)
	some := allIDs(ft.v.tree)
	for i, id := range []string{"", ".", "..", "%", "%zz", "%2F", "a/b", "a%2Fb", "../distributors", "\x00", "é", " ",
		strings.Repeat("a", 5000), ft.v.tree.OwnerID(), some[1], some[len(some)/2], some[len(some)-1], "nosuchorg000"} {
		f.Add(uint8(i%4), uint8(i), id, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, route, who uint8, id string, escape bool) {
		entity := fuzzDetailRoutes[int(route)%len(fuzzDetailRoutes)]
		ps := ft.persona(who)
		seg := wireSafe(id, "/%.-_~!$&'()*+,;=:@")
		if escape {
			seg = url.PathEscape(id)
		}
		target := "/api/" + entity + "/" + seg
		r := ft.get(t, target, ps.token)
		if r.Status < 400 && r.Status != http.StatusOK {
			t.Fatalf("GET %q as %s: %d %s", target, ps.name, r.Status, r.Body)
		}
		if r.Status != http.StatusOK {
			return
		}
		var got struct {
			LogtoID string `json:"logto_id"`
		}
		if err := json.Unmarshal(r.Env.Data, &got); err != nil {
			t.Fatalf("GET %q: %v %s", target, err, r.Body)
		}
		o, known := ft.v.tree.Org(got.LogtoID)
		switch {
		case escape && got.LogtoID != id:
			t.Fatalf("GET %q answered %s", target, got.LogtoID)
		case entity == "users" && !ft.v.listsUser(ps.p, got.LogtoID):
			t.Fatalf("GET %q as %s served user %s", target, ps.name, got.LogtoID)
		case entity != "users" && (!known || !ft.v.sees(ps.p, got.LogtoID) || o.Deleted() || entity != o.Type.String()+"s"):
			t.Fatalf("GET %q as %s served organization %s", target, ps.name, got.LogtoID)
		}
	})
}

// wireSafe percent-encodes the bytes of s that cannot travel in a request
// target (controls, space, non-ASCII, and the delimiters not in keep),
// leaving everything else — '%' included — as the fuzzer wrote it, so that
// malformed escapes and odd structure reach the server.
func wireSafe(s, keep string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~',
			strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
