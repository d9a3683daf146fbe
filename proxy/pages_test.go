package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// pageQueries are list requests of every kind the cache keeps.
var pageQueries = []string{
	"/api/customers",
	"/api/customers?page=2&page_size=5&sort_by=name",
	"/api/customers?search=customer&status=suspended&status=enabled",
	"/api/customers?status=deleted&sort_by=updated_at&sort_direction=asc",
	"/api/resellers?sort_by=name&sort_direction=desc",
	"/api/distributors",
	"/api/organizations",
	"/api/organizations?type=customer&page_size=7&sort_by=type",
	"/api/organizations?search=d1",
}

// TestPageCacheNeverChangesAnAnswer asks every list query as every persona
// and a tree-wide service, twice and interleaved, so that the second round
// is answered from the cache right after other callers filled it with
// theirs; each answer must equal the one computed afresh for that caller
// (the same query with an extra parameter the routes ignore, which the
// cache has never seen).
func TestPageCacheNeverChangesAnAnswer(t *testing.T) {
	h := newHarness(t, harnessOptions{Bulk: &logtotest.BulkOptions{Distributors: 3, ResellersPerDistributor: 3, CustomersPerReseller: 4}})
	tokens := map[string]string{"service": h.serviceToken(t, "read:customers", "read:resellers", "read:distributors")}
	for _, p := range personas {
		tokens[p] = h.token(t, p)
	}
	first := map[string][]byte{}
	for round := range 2 {
		for _, q := range pageQueries {
			for who, tok := range tokens {
				r := h.do(t, http.MethodGet, q, tok, nil)
				id := who + " " + q
				if round == 0 {
					first[id] = r.Body
					continue
				}
				sep := "?"
				if strings.Contains(q, "?") {
					sep = "&"
				}
				fresh := h.do(t, http.MethodGet, q+sep+"uncached="+who, tok, nil)
				if r.Status != fresh.Status || !bytes.Equal(r.Body, fresh.Body) || !bytes.Equal(r.Body, first[id]) {
					t.Errorf("%s: cached answer %d differs from a fresh one %d:\n%s\n%s", id, r.Status, fresh.Status, r.Body, fresh.Body)
				}
			}
		}
	}
}

// TestPageCacheFollowsSnapshots: a list answered from the cache changes as
// soon as a new snapshot is served.
func TestPageCacheFollowsSnapshots(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	const q = "/api/customers?sort_by=name"
	before := h.get(t, "d1", q)
	if again := h.get(t, "d1", q); !bytes.Equal(before.Body, again.Body) {
		t.Fatal("two reads of an unchanged snapshot differ")
	}
	id := h.orgID(t, "d1r1c1")
	renameAndRefresh(t, h, id, "Renamed Customer")
	after := h.get(t, "d1", q)
	if bytes.Equal(before.Body, after.Body) || !strings.Contains(string(after.Body), "Renamed Customer") {
		t.Errorf("the list still shows the previous snapshot:\n%s", after.Body)
	}
}

// TestPageCacheBounds: the cache keeps within its entry and byte bounds,
// refuses answers of an older snapshot than it holds, and empties for a
// newer one.
func TestPageCacheBounds(t *testing.T) {
	older, newer := hierarchy.Build(nil, hierarchy.Options{}), hierarchy.Build(nil, hierarchy.Options{})
	key := func(tree *hierarchy.Tree, i int) pageKey {
		return pageKey{scope: tree.Scope(hierarchy.Principal{}), route: "customers", query: fmt.Sprint("page=", i)}
	}
	p := newRenderedPages(10, 1000)
	for i := range 100 {
		p.put(2, older, key(older, i), make([]byte, 50))
		if len(p.entries) > 10 || p.bytes > 1000 {
			t.Fatalf("after %d puts: %d entries, %d bytes", i+1, len(p.entries), p.bytes)
		}
	}
	if _, ok := p.get(key(older, 99)); !ok {
		t.Error("the latest answer is not kept")
	}
	p.put(2, older, key(older, 200), make([]byte, 200)) // over maxBytes/8
	if _, ok := p.get(key(older, 200)); ok {
		t.Error("an answer too large for the cache was kept")
	}
	p.put(1, newer, key(newer, 1), []byte("stale"))
	if _, ok := p.get(key(newer, 1)); ok {
		t.Error("an answer of an older snapshot was kept")
	}
	p.put(3, newer, key(newer, 1), []byte("fresh"))
	if body, ok := p.get(key(newer, 1)); !ok || string(body) != "fresh" || len(p.entries) != 1 || p.bytes != 5 {
		t.Errorf("a newer snapshot did not replace the cache: %d entries, %d bytes", len(p.entries), p.bytes)
	}
	var none *renderedPages
	none.put(1, older, key(older, 1), []byte("x"))
	if _, ok := none.get(key(older, 1)); ok {
		t.Error("a nil cache kept something")
	}
}

// TestDetailCacheNeverChangesAnAnswer asks every persona for every fixture
// organization through every detail route, twice, the Owner first each
// round, so that the second round is answered from the cache, right after
// callers of other scopes filled it with theirs. Every answer, found or
// not, must be the first round's (computed afresh: no persona shares
// another's scope): a scope that cannot see an organization must never be
// given the answer remembered for one that can.
func TestDetailCacheNeverChangesAnAnswer(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	callers := append([]string{"owner"}, personas...)
	var ids []string
	for _, p := range personas {
		ids = append(ids, h.orgID(t, p))
	}
	tree := h.tree(t)
	types := map[string]hierarchy.Type{"customers": hierarchy.TypeCustomer, "resellers": hierarchy.TypeReseller, "distributors": hierarchy.TypeDistributor}
	first := map[string]reply{}
	found := 0
	for round := range 2 {
		for _, who := range callers {
			tok, principal := h.token(t, who), h.personaUser(t, who).Principal()
			for _, route := range []string{"customers", "resellers", "distributors"} {
				for _, id := range ids {
					path := "/api/" + route + "/" + id
					r := h.do(t, http.MethodGet, path, tok, nil)
					key := who + " " + path
					if org, visible := tree.Find(principal, id); r.Status == http.StatusOK && (!visible || org.Type != types[route]) {
						t.Errorf("%s: answered 200 for an organization the caller cannot see there (round %d):\n%s", key, round, r.Body)
					}
					if round == 0 {
						first[key] = r
						if r.Status == http.StatusOK {
							found++
						}
						continue
					}
					if r.Status != first[key].Status || !bytes.Equal(r.Body, first[key].Body) {
						t.Errorf("%s: answered %d from the cache, %d afresh:\n%s\n%s", key, r.Status, first[key].Status, r.Body, first[key].Body)
					}
				}
			}
		}
	}
	if found == 0 || found == len(first) {
		t.Fatalf("%d of %d detail requests found: the test needs both", found, len(first))
	}
}

// TestDetailCacheFollowsSnapshots: an organization answered from the cache
// changes as soon as a new snapshot is served.
func TestDetailCacheFollowsSnapshots(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	id := h.orgID(t, "d1r1c1")
	path := "/api/customers/" + id
	before := h.get(t, "d1", path)
	if again := h.get(t, "d1", path); !bytes.Equal(before.Body, again.Body) || before.Status != http.StatusOK {
		t.Fatalf("two reads of an unchanged snapshot: %d, then %s", before.Status, again.Body)
	}
	renameAndRefresh(t, h, id, "Renamed Customer")
	if after := h.get(t, "d1", path); !strings.Contains(string(after.Body), "Renamed Customer") {
		t.Errorf("the detail still shows the previous snapshot:\n%s", after.Body)
	}
}

// renameAndRefresh renames an organization in the simulator and makes the
// harness serve a snapshot that has it.
func renameAndRefresh(t *testing.T, h *harness, id, name string) {
	t.Helper()
	if _, err := h.sim.UpdateOrganization(id, map[string]any{"name": name}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.view.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}
