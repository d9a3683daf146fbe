package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// BenchmarkHotPaths measures whole requests through the real server —
// request id, metrics and logging, the response conventions, authentication
// with a real session token (HS256, remembered once verified, and the
// revocation check, answered from memory) or a Logto-issued service token, the handler and its rendering — over a view of
// the benchmark tree (hierarchytest.Large, ~100,000 organizations) and a
// real Redis (REDIS_URL, else the embedded one). Only the network is left
// out: the load generator (cmd/logto-load) measures that. These are the
// requests of the load generator's scenarios, so a profile of one
// (-cpuprofile) explains a row of its table.
func BenchmarkHotPaths(b *testing.B) {
	hb := newHotBench(b)
	for _, bc := range []struct {
		name, path, token string
	}{
		{"ceiling", "/healthz", ""},
		{"get-customer", "/api/customers/" + hb.customer, hb.session},
		{"get-customer-service", "/api/customers/" + hb.customer, hb.service},
		{"list-customers", "/api/customers?page=1&page_size=25&sort_by=name", hb.session},
		{"organizations-search", "/api/organizations?search=" + hb.search, hb.session},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			if bc.token != "" {
				req.Header.Set("Authorization", "Bearer "+bc.token)
			}
			w := &discardWriter{header: http.Header{}}
			handler := hb.server.Handler()
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				w.status, w.n = 0, 0
				handler.ServeHTTP(w, req)
			}
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
			b.ReportMetric(float64(w.n), "bytes/answer")
		})
	}
	// The same list with a query the cache has never seen (an ignored
	// parameter that differs every time): what a list costs to compute and
	// render (pages.go).
	b.Run("list-customers-uncached", func(b *testing.B) {
		w := &discardWriter{header: http.Header{}}
		handler := hb.server.Handler()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			req := httptest.NewRequest(http.MethodGet, "/api/customers?page=1&page_size=25&sort_by=name&n="+strconv.Itoa(i), nil)
			req.Header.Set("Authorization", "Bearer "+hb.session)
			clear(w.header)
			w.status, w.n = 0, 0
			handler.ServeHTTP(w, req)
		}
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	})
}

// hotBench is a whole server over the benchmark tree, with a distributor's
// session token and a tree-wide service token.
type hotBench struct {
	server   *Server
	session  string
	service  string
	customer string // a customer the distributor sees
	search   string // a term matching some of the distributor's organizations
}

func newHotBench(b *testing.B) *hotBench {
	b.Helper()
	quiet := discardLogger()
	sim, err := logtotest.New(logtotest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sim.Close() })
	fixture, err := sim.SeedFixture()
	if err != nil {
		b.Fatal(err)
	}
	appID, appSecret := sim.M2MCredentials()
	lc, err := logto.New(logto.Config{Endpoint: sim.URL(), AppID: appID, AppSecret: appSecret, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}

	records := hierarchytest.RandomRecords(1, hierarchytest.Large())
	rdb, prefix := cachetest.Client(b)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, time.Now)
	view, err := cache.NewHierarchyView(cache.HierarchyConfig{Client: rdb, Prefix: prefix, Logger: quiet, Observer: metrics,
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

	// The store follows revocations in memory, as every replica's does.
	store, err := cache.NewSessionStore(cache.SessionStoreConfig{Client: rdb, Prefix: prefix, Observer: metrics, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	for deadline := time.Now().Add(10 * time.Second); !store.Synced(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the session store did not sync")
		}
	}
	profiles, err := NewProfiles(ProfilesConfig{Logto: lc, Loader: cache.LoaderConfig[Profile]{Client: rdb, Prefix: prefix, Logger: quiet}})
	if err != nil {
		b.Fatal(err)
	}
	service, err := NewServiceTokens(ServiceTokenConfig{Issuer: sim.Issuer(), Audience: fixture.APIResource.Indicator, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(service.Close)
	sessions, err := NewSessions(SessionConfig{Secret: []byte(strings.Repeat("hot-path-secret-", 3))})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{Hierarchy: view, Logto: lc, Sessions: sessions, Auth: AuthConfig{Store: store, Profiles: profiles, Service: service},
		Metrics: metrics, Gatherer: reg, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}

	// The distributor with the most customers, signed in as the login
	// exchange would sign in its admin.
	tree := snap.Tree
	owner := hierarchy.Principal{OrgID: tree.OwnerID(), Role: hierarchy.RoleOwner}
	var dist hierarchy.Org
	for page := 1; page <= 2; page++ {
		for _, d := range tree.List(owner, hierarchy.TypeDistributor, hierarchy.Query{Page: page, PageSize: 100}).Orgs {
			if d.CustomersCount > dist.CustomersCount {
				dist = d
			}
		}
	}
	userID := "hot-path-user"
	session, _, err := sessions.MintAccess(SessionUser{ID: UserUUID(userID), LogtoID: &userID, Username: "hot", Name: "Hot Path",
		UserRoles: []string{"Admin"}, UserPermissions: []string{"read:users"}, OrgRole: "Distributor",
		OrgPermissions: roleReads[hierarchy.RoleDistributor], OrganizationID: dist.LogtoID, OrganizationName: dist.Name})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := sim.IssueUserToken(fixture.Users["Owner"], logtotest.UserTokenOptions{Resource: fixture.APIResource.Indicator,
		Scopes: []string{"read:customers", "read:resellers", "read:distributors"}})
	if err != nil {
		b.Fatal(err)
	}
	p := hierarchy.Principal{OrgID: dist.LogtoID, Role: hierarchy.RoleDistributor, Permissions: roleReads[hierarchy.RoleDistributor]}
	first := tree.List(p, hierarchy.TypeCustomer, hierarchy.Query{}).Orgs
	if len(first) == 0 {
		b.Fatal("the distributor sees no customer")
	}
	customer := first[len(first)/2]
	search := customer.Name[:min(3, len(customer.Name))]
	return &hotBench{server: srv, session: session, service: svc, customer: customer.LogtoID, search: search}
}

// BenchmarkHotPathsHTTP is BenchmarkHotPaths over a real loopback
// connection (net/http server and client in this process, kept-alive
// connections), so that a CPU profile shows the whole cost of a request;
// focus it on the server side with pprof -focus 'conn..serve'.
func BenchmarkHotPathsHTTP(b *testing.B) {
	hb := newHotBench(b)
	srv := httptest.NewServer(hb.server.Handler())
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	for _, bc := range []struct {
		name, path, token string
	}{
		{"ceiling", "/healthz", ""},
		{"get-customer", "/api/customers/" + hb.customer, hb.session},
		{"get-customer-service", "/api/customers/" + hb.customer, hb.service},
		{"list-customers", "/api/customers?page=1&page_size=25&sort_by=name", hb.session},
		{"organizations-search", "/api/organizations?search=" + hb.search, hb.session},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, err := http.NewRequest(http.MethodGet, srv.URL+bc.path, nil)
					if err != nil {
						b.Error(err)
						return
					}
					if bc.token != "" {
						req.Header.Set("Authorization", "Bearer "+bc.token)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
