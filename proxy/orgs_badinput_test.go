package proxy

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Odd ids get the entity's 404 (or, for what cannot be an id path at all,
// the router's), never a 500.
func TestOrgDetailBadIDs(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	own := h.orgID(t, "d1r1c1")
	escapedOwn := fmt.Sprintf("%%%02X", own[0]) + own[1:]
	for _, tc := range []struct {
		name, path string
		status     int
		message    string
	}{
		{"empty", "/api/customers/", 404, "api not found"},
		{"10 KB", "/api/customers/" + strings.Repeat("a", 10<<10), 404, "customer not found"},
		{"unicode", "/api/customers/" + url.PathEscape("✓🦊ü"), 404, "customer not found"},
		{"escaped traversal", "/api/customers/..%2F..%2Fdistributors", 404, "customer not found"},
		{"dot dot", "/api/customers/..", 404, "customer not found"},
		{"trailing slash", "/api/customers/" + own + "/", 404, "api not found"},
		{"traversal", "/api/customers/../distributors", 404, "api not found"},
		{"NUL", "/api/customers/%00", 404, "customer not found"},
		{"escaped percent", "/api/customers/%2561", 404, "customer not found"},
		{"markup", "/api/customers/" + url.PathEscape(`"><script>&`), 404, "customer not found"},
		{"another type's id", "/api/customers/" + h.orgID(t, "d1r1"), 404, "customer not found"},
		{"sub-resource not served", "/api/customers/" + own + "/stats", 404, "api not found"},
		{"own id, escaped", "/api/customers/" + escapedOwn, 200, "customer retrieved successfully"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The customer itself asks, so the self bypass is what lets
			// its own (escaped) id through and everything else is refused
			// only once past the gate; the owner checks the other side.
			for _, viewer := range []string{"d1r1c1", "owner"} {
				r := h.get(t, viewer, tc.path)
				want := tc.status
				if viewer == "d1r1c1" && tc.status == 404 && tc.message != "api not found" {
					want = 403 // a customer lacks read:customers
				}
				if r.Status != want || (want != 403 && r.Env.Message != tc.message) {
					t.Errorf("%s GET %.80s: %d %.200s, want %d %s", viewer, tc.path, r.Status, r.Body, want, tc.message)
				}
			}
		})
	}
	t.Run("malformed escape", func(t *testing.T) {
		// Go's client refuses to send it; write the request by hand.
		conn, err := net.Dial("tcp", h.http.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /api/customers/%%zz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", h.token(t, "owner"))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 || resp.StatusCode < 400 {
			t.Errorf("status %d, want a 4xx", resp.StatusCode)
		}
	})
}

// Bad query values get the upstream's answers: defaults, the echoed
// sort_by, dropped invalid filter values.
func TestOrgListBadQueries(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	get := func(query string) listReply {
		t.Helper()
		r := h.get(t, "owner", "/api/customers?"+query)
		if r.Status != http.StatusOK || r.Env.Message != "customers retrieved successfully" {
			t.Fatalf("?%.100s: %d %.300s", query, r.Status, r.Body)
		}
		return decodeList(t, r, "customers")
	}
	base := get("")
	if base.pagination.Page != 1 || base.pagination.PageSize != 20 || base.pagination.TotalCount != 5 {
		t.Fatalf("default pagination %+v", base.pagination)
	}
	baseIDs := ids(t, base.items)

	// Paging values that fall back to the defaults.
	for _, q := range []string{"page=-1", "page=0", "page=abc", "page=99999999999999999999", "page=1.5", "page_size=100000",
		"page_size=0", "page_size=-5", "page_size=101", "page_size=ten", "page=1&page=2", "a=%zz&page=%", "page=%00"} {
		l := get(q)
		if l.pagination.Page != 1 || l.pagination.PageSize != 20 || !slices.Equal(ids(t, l.items), baseIDs) {
			t.Errorf("?%s: pagination %+v, items %v", q, l.pagination, ids(t, l.items))
		}
	}
	if l := get("page_size=100"); l.pagination.PageSize != 100 {
		t.Errorf("page_size=100 gave %d", l.pagination.PageSize)
	}
	if l := get("a=%zz&page_size=2"); l.pagination.PageSize != 2 || len(l.items) != 2 {
		t.Errorf("a malformed pair dropped the good one: %+v", l.pagination)
	}
	far := get(fmt.Sprintf("page=%d&page_size=100", math.MaxInt64))
	if len(far.items) != 0 || !far.pagination.HasPrev || far.pagination.HasNext || far.pagination.PrevPage != math.MaxInt64-1 {
		t.Errorf("the last int page: %+v, %d items", far.pagination, len(far.items))
	}

	// An unknown sort_by is echoed, with the default order.
	for _, q := range []string{"sort_by=bogus", "sort_by=bogus&sort_direction=sideways", "sort_by=%3Cscript%3E&sort_direction=DESC"} {
		l := get(q)
		want, _ := url.ParseQuery(q)
		if l.pagination.SortBy != want.Get("sort_by") || l.pagination.SortDirection != "asc" || !slices.Equal(ids(t, l.items), baseIDs) {
			t.Errorf("?%s: pagination %+v, items %v", q, l.pagination, ids(t, l.items))
		}
	}
	if l := get(""); l.pagination.SortBy != "" || l.pagination.SortDirection != "" {
		t.Errorf("no sort_by, yet sort fields: %+v", l.pagination)
	}

	// Filters whose values are all invalid filter nothing.
	for _, q := range []string{"status=bogus", "status=", "status=Enabled&status=nonsense&status=SUSPENDED",
		"created_by=../etc&created_by=&created_by=" + strings.Repeat("x", 65),
		"organization_id=%00&organization_id=" + url.QueryEscape("a b") + "&organization_id=" + strings.Repeat("y", 65),
		"include_hierarchy=true", "include_hierarchy=%ff"} {
		if l := get(q); !slices.Equal(ids(t, l.items), baseIDs) {
			t.Errorf("?%s: items %v, want %v", q, ids(t, l.items), baseIDs)
		}
	}
	// Searches that match nothing answer an empty list, not null.
	for _, q := range []string{"search=" + strings.Repeat("z", 10<<10), "search=%00", "search=%25", "search=" + url.QueryEscape("✓🦊")} {
		if l := get(q); len(l.items) != 0 || l.pagination.TotalCount != 0 || l.pagination.TotalPages != 0 {
			t.Errorf("?%.40s: %d items, %+v", q, len(l.items), l.pagination)
		}
	}

	// The picker survives the same.
	for _, q := range []string{"type=%00", "type=" + strings.Repeat("t", 10<<10), "sort_by=type&sort_direction=desc&page_size=-1",
		"name=&description=&search=", "page=-9&page_size=1000"} {
		r := h.get(t, "owner", "/api/organizations?"+q)
		if r.Status != http.StatusOK {
			t.Errorf("/organizations?%.40s: %d %.200s", q, r.Status, r.Body)
			continue
		}
		decodeList(t, r, "organizations")
	}
}
