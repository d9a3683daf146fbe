package proxy

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// msgInsufficientPermissions is the upstream's 403 for a route the caller's
// permissions do not open (upstream-my-contract §1.3).
const msgInsufficientPermissions = "insufficient permissions"

// entity is one of the three organization levels as the routes name it:
// its path, its permission and the upstream's messages about it.
type entity struct {
	typ  hierarchy.Type
	perm string // read:<plural>, the route gate
	// plural is the path segment and the list's key in data.
	plural string
	// The upstream's messages (upstream-my-contract §1.4).
	listOK, listFailed, getOK, getFailed, notFound string
}

// newEntity spells out an entity's messages from its names.
func newEntity(typ hierarchy.Type, perm, singular, plural string) *entity {
	return &entity{
		typ: typ, perm: perm, plural: plural,
		listOK:     plural + " retrieved successfully",
		listFailed: "failed to list " + plural,
		getOK:      singular + " retrieved successfully",
		getFailed:  "failed to get " + singular,
		notFound:   singular + " not found",
	}
}

// The organization reads' messages that belong to no entity.
const (
	msgOrganizationsOK     = "organizations retrieved successfully"
	msgOrganizationsFailed = "failed to fetch organizations"
)

// maxPooledRenderBytes caps the render buffers kept for reuse: a page is at
// most 100 organizations, so anything larger is an outlier not worth keeping.
const maxPooledRenderBytes = 1 << 20

// orgHandlers serves the organization reads from the hierarchy snapshot.
// Handlers render into pooled buffers (render.go), which is what keeps a
// page of a 100,000-organization tree at a handful of allocations, and
// answers are remembered per snapshot and scope (pages.go): lists per query,
// details per organization, in caches of their own so that a crawl over
// many organizations never evicts the lists.
type orgHandlers struct {
	s       *Server
	bufs    sync.Pool // *[]byte
	pages   *renderedPages
	details *renderedPages
}

// orgRoutes registers the organization reads: /customers, /resellers,
// /distributors and /organizations.
func (s *Server) orgRoutes(g *echo.Group) {
	h := &orgHandlers{s: s, pages: newRenderedPages(pageCacheEntries, pageCacheBytes),
		details: newRenderedPages(detailCacheEntries, detailCacheBytes)}
	for _, e := range []*entity{
		newEntity(hierarchy.TypeCustomer, hierarchy.PermReadCustomers, "customer", "customers"),
		newEntity(hierarchy.TypeReseller, hierarchy.PermReadResellers, "reseller", "resellers"),
		newEntity(hierarchy.TypeDistributor, hierarchy.PermReadDistributors, "distributor", "distributors"),
	} {
		g.GET("/"+e.plural, h.list(e))
		g.GET("/"+e.plural+"/:id", h.get(e))
	}
	g.GET("/organizations", h.organizations)
}

// list answers GET /<entity>: the organizations of that level in the
// caller's scope, filtered, sorted and paged as upstream. The route is
// closed (403) to a caller without read:<entity>.
func (h *orgHandlers) list(e *entity) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := callerOf(c).Principal
		if !p.Has(e.perm) {
			return fail(c, http.StatusForbidden, msgInsufficientPermissions)
		}
		snap, err := h.s.snapshot(c)
		if err != nil {
			h.s.requestLogger(c).Error(e.listFailed, slog.Any("error", err))
			return fail(c, http.StatusInternalServerError, e.listFailed)
		}
		key := pageKey{scope: snap.Tree.Scope(p), route: e.plural, query: c.Request().URL.RawQuery}
		if body, ok := h.pages.get(key); ok {
			return answerJSON(c, body)
		}
		q := c.QueryParams()
		paging := ParsePaging(q)
		page := snap.Tree.List(p, e.typ, listQuery(q, paging, e.typ))

		return h.remember(c, h.pages, snap, key, func(b []byte) []byte {
			b = appendEnvelopeHead(b, http.StatusOK, e.listOK)
			b = append(b, `{"`...)
			b = append(b, e.plural...)
			b = append(b, `":[`...)
			for i := range page.Orgs {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendOrg(b, &page.Orgs[i], shapeListItem)
			}
			b = append(b, `],"pagination":`...)
			b = appendPagination(b, NewPagination(paging, page.Total))
			b = append(b, '}')
			return appendEnvelopeTail(b)
		})
	}
}

// get answers GET /<entity>/{id}. The route is open to a caller with
// read:<entity>, and to anyone reading their own organization (the
// upstream's self bypass). Past the gate, an organization that is missing,
// soft-deleted, outside the caller's scope or of another level is the same
// 404 "<entity> not found", so that existence never leaks.
func (h *orgHandlers) get(e *entity) echo.HandlerFunc {
	return func(c echo.Context) error {
		if moreSegments(c) {
			return echo.ErrNotFound
		}
		p := callerOf(c).Principal
		id, ok := pathID(c)
		self := ok && id != "" && id == p.OrgID
		if !p.Has(e.perm) && !self {
			return fail(c, http.StatusForbidden, msgInsufficientPermissions)
		}
		if !ok {
			return fail(c, http.StatusNotFound, e.notFound)
		}
		snap, err := h.s.snapshot(c)
		if err != nil {
			h.s.requestLogger(c).Error(e.getFailed, slog.Any("error", err))
			return fail(c, http.StatusInternalServerError, e.getFailed)
		}
		// A remembered answer was rendered for this scope of this tree, so
		// the organization was visible and of the route's type: neither
		// needs checking again.
		key := pageKey{scope: snap.Tree.Scope(p), route: e.plural, query: id}
		if body, ok := h.details.get(key); ok {
			return answerJSON(c, body)
		}
		org, found := snap.Tree.Find(p, id)
		if !found || org.Type != e.typ {
			return fail(c, http.StatusNotFound, e.notFound)
		}
		return h.remember(c, h.details, snap, key, func(b []byte) []byte {
			b = appendEnvelopeHead(b, http.StatusOK, e.getOK)
			b = appendOrg(b, &org, shapeDetail)
			return appendEnvelopeTail(b)
		})
	}
}

// organizations answers GET /organizations, the dashboard's organization
// picker: every signed-in caller may list the organizations of its scope.
func (h *orgHandlers) organizations(c echo.Context) error {
	p := callerOf(c).Principal
	snap, err := h.s.snapshot(c)
	if err != nil {
		h.s.requestLogger(c).Error(msgOrganizationsFailed, slog.Any("error", err))
		return fail(c, http.StatusInternalServerError, msgOrganizationsFailed)
	}
	key := pageKey{scope: snap.Tree.Scope(p), route: "organizations", query: c.Request().URL.RawQuery}
	if body, ok := h.pages.get(key); ok {
		return answerJSON(c, body)
	}
	q := c.QueryParams()
	paging := ParsePaging(q)
	page := snap.Tree.ListOrganizations(p, hierarchy.OrgQuery{
		Search:        q.Get("search"),
		Type:          q.Get("type"),
		Name:          q.Get("name"),
		Description:   q.Get("description"),
		SortBy:        paging.SortBy,
		SortDirection: sortDirection(paging),
		Page:          paging.Page,
		PageSize:      paging.PageSize,
	})
	return h.remember(c, h.pages, snap, key, func(b []byte) []byte {
		b = appendEnvelopeHead(b, http.StatusOK, msgOrganizationsOK)
		b = append(b, `{"organizations":[`...)
		for i := range page.Orgs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendPickerItem(b, &page.Orgs[i])
		}
		b = append(b, `],"pagination":`...)
		b = appendPagination(b, NewPagination(paging, page.Total))
		b = append(b, '}')
		return appendEnvelopeTail(b)
	})
}

// listQuery reads a list request's filters. Values are passed as received:
// the domain applies the upstream's rules (unknown statuses ignored, ids not
// matching ^[A-Za-z0-9_-]{1,64}$ dropped, unknown sort_by → default order).
// The paging comes from ParsePaging, so that the order applied and the
// pagination object echoed always agree.
func listQuery(q url.Values, paging Paging, typ hierarchy.Type) hierarchy.Query {
	query := hierarchy.Query{
		Search:        q.Get("search"),
		Status:        q["status"],
		CreatedBy:     q["created_by"],
		SortBy:        paging.SortBy,
		SortDirection: sortDirection(paging),
		Page:          paging.Page,
		PageSize:      paging.PageSize,
	}
	if typ != hierarchy.TypeDistributor { // upstream: no organization filter on distributors
		query.OrganizationIDs = q["organization_id"]
		query.IncludeHierarchy = q.Get("include_hierarchy") == "true"
	}
	return query
}

// sortDirection is the direction ParsePaging settled on, as the domain
// spells it.
func sortDirection(p Paging) string {
	if p.Desc {
		return "desc"
	}
	return "asc"
}

// moreSegments reports a detail path with segments after the id (echo's
// :id would swallow them, e.g. /customers/{id}/stats): that is a route this
// service does not serve, answered 404 "api not found" like any other.
func moreSegments(c echo.Context) bool {
	return strings.Contains(c.Param("id"), "/")
}

// pathID is the {id} path parameter, unescaped. echo hands over the raw
// segment when the request path needed escaping (RawPath set), so a
// percent-encoded id is decoded here; one that does not decode is no id at
// all (ok false). (echo lets a route's last parameter match the rest of the
// path, slashes included, which is why get turns those away first.)
func pathID(c echo.Context) (string, bool) {
	id := c.Param("id")
	if c.Request().URL.RawPath == "" {
		return id, true
	}
	decoded, err := url.PathUnescape(id)
	return decoded, err == nil
}

// remember writes a 200 JSON answer appended by fill into a pooled buffer
// and keeps a copy in store as the answer for key in snap's tree.
func (h *orgHandlers) remember(c echo.Context, store *renderedPages, snap cache.Snapshot, key pageKey, fill func([]byte) []byte) error {
	bp, ok := h.bufs.Get().(*[]byte)
	if !ok {
		bp = new([]byte)
	}
	b := fill((*bp)[:0])
	store.put(snap.Generation, snap.Tree, key, bytes.Clone(b))
	err := answerJSON(c, b)
	if cap(b) <= maxPooledRenderBytes {
		*bp = b
		h.bufs.Put(bp)
	}
	return err
}
