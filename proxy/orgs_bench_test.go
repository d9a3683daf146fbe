package proxy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// discardWriter is a ResponseWriter that keeps nothing but the status and
// the byte count, so that the benchmarks measure the server, not a recorder.
type discardWriter struct {
	header http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// benchServer serves the organization routes over a view of the benchmark
// tree (hierarchytest.Large, ~100,000 organizations), behind the response
// conventions and with the caller set directly: what is measured is the
// read path — snapshot, domain query, rendering, ETag, gzip — and not the
// token verification in front of it.
func benchServer(b *testing.B) (*echo.Echo, *hierarchy.Tree, *Caller) {
	b.Helper()
	records := hierarchytest.RandomRecords(1, hierarchytest.Large())
	rdb, prefix := cachetest.Client(b)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	view, err := cache.NewHierarchyView(cache.HierarchyConfig{Client: rdb, Prefix: prefix, Logger: quiet,
		Source: func(context.Context) ([]hierarchy.Record, error) { return records, nil }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = view.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snap, err := view.Current(ctx)
	if err != nil {
		b.Fatal(err)
	}
	tree := snap.Tree

	// The distributor with the most customers.
	owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
	var dist hierarchy.Org
	for page := 1; page <= 2; page++ {
		for _, d := range tree.List(owner, hierarchy.TypeDistributor, hierarchy.Query{Page: page, PageSize: 100}).Orgs {
			if d.CustomersCount > dist.CustomersCount {
				dist = d
			}
		}
	}
	caller := &Caller{Principal: hierarchy.Principal{OrgID: dist.LogtoID, Role: hierarchy.RoleDistributor,
		Permissions: roleReads[hierarchy.RoleDistributor]}}

	s := &Server{cfg: Config{Hierarchy: view, Logger: quiet}}
	conv, err := newConventions()
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	e.Use(conv.middleware)
	s.orgRoutes(e.Group("/api", func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(callerKey, caller)
			return next(c)
		}
	}))
	return e, tree, caller
}

func BenchmarkOrgReads(b *testing.B) {
	e, tree, caller := benchServer(b)
	first := tree.List(caller.Principal, hierarchy.TypeCustomer, hierarchy.Query{})
	if len(first.Orgs) != 20 {
		b.Fatalf("the distributor's first page has %d customers", len(first.Orgs))
	}
	customer := first.Orgs[7].LogtoID
	for _, bc := range []struct {
		name, path, encoding, inm string
	}{
		{"distributor customers page 1", "/api/customers", "identity", ""},
		{"distributor customers page 1 gzip", "/api/customers", "gzip", ""},
		{"distributor customers page 1 not modified", "/api/customers", "identity", "*"},
		{"distributor customers search", "/api/customers?search=a&sort_by=name", "identity", ""},
		{"customer get", "/api/customers/" + customer, "identity", ""},
		{"organizations page 1", "/api/organizations", "identity", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			req.Header.Set("Accept-Encoding", bc.encoding)
			if bc.inm != "" {
				req.Header.Set("If-None-Match", bc.inm)
			}
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				w.status, w.n = 0, 0
				e.ServeHTTP(w, req)
			}
			want := http.StatusOK
			if bc.inm != "" {
				want = http.StatusNotModified
			}
			if w.status != want {
				b.Fatalf("status %d, want %d", w.status, want)
			}
			b.ReportMetric(float64(w.n), "bytes/answer")
		})
	}
}

// jsonCustomer is the customer list item as a struct for encoding/json:
// the alternative the hand-rolled appender is measured against.
type jsonCustomer struct {
	ID                hierarchy.UUID     `json:"id"`
	LogtoID           string             `json:"logto_id"`
	Name              string             `json:"name"`
	Description       string             `json:"description"`
	CustomData        json.RawMessage    `json:"custom_data"`
	CreatedAt         time.Time          `json:"created_at"`
	UpdatedAt         time.Time          `json:"updated_at"`
	DeletedAt         *time.Time         `json:"deleted_at"`
	SuspendedAt       *time.Time         `json:"suspended_at"`
	SuspendedByOrgID  *string            `json:"suspended_by_org_id"`
	RebrandingEnabled bool               `json:"rebranding_enabled"`
	RebrandingOrgID   string             `json:"rebranding_org_id,omitempty"`
	CreatedBy         *hierarchy.Creator `json:"created_by,omitempty"`
}

func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// BenchmarkRenderCustomersPage compares the hand-rolled appender with
// encoding/json on the same page, so that its keep is measured, not assumed.
func BenchmarkRenderCustomersPage(b *testing.B) {
	_, tree, caller := benchServer(b)
	page := tree.List(caller.Principal, hierarchy.TypeCustomer, hierarchy.Query{})
	b.Run("appender", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = buf[:0]
			for i := range page.Orgs {
				buf = appendOrg(buf, &page.Orgs[i], shapeListItem)
			}
		}
	})
	b.Run("encoding-json struct", func(b *testing.B) {
		b.ReportAllocs()
		items := make([]jsonCustomer, len(page.Orgs))
		for b.Loop() {
			for i := range page.Orgs {
				o := &page.Orgs[i]
				items[i] = jsonCustomer{ID: o.ID, LogtoID: o.LogtoID, Name: o.Name, Description: o.Description,
					CustomData: o.CustomData, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
					DeletedAt: nonZero(o.DeletedAt), SuspendedAt: nonZero(o.SuspendedAt),
					SuspendedByOrgID: nonZero(o.SuspendedByOrgID), RebrandingEnabled: o.RebrandingEnabled(),
					RebrandingOrgID: o.RebrandingOrgID, CreatedBy: o.Creator}
			}
			if _, err := json.Marshal(items); err != nil {
				b.Fatal(err)
			}
		}
	})
}
