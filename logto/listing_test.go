package logto

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

const bulkOrganizations = 2500

// seedBulk generates a realistic hierarchy of exactly bulkOrganizations
// organizations (the Owner, 7 distributors, 28 resellers, 2,464 customers)
// and returns their ids.
func seedBulk(t testing.TB, s *logtotest.Server) map[string]bool {
	t.Helper()
	if _, err := s.SeedBulk(logtotest.BulkOptions{Distributors: 7, ResellersPerDistributor: 4, CustomersPerReseller: 88}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, id := range s.OrganizationIDs() {
		ids[id] = true
	}
	if len(ids) != bulkOrganizations {
		t.Fatalf("seeded %d organizations, want %d", len(ids), bulkOrganizations)
	}
	return ids
}

// pagesFor is the number of requests one full pass over n items takes.
func pagesFor(n int) int64 { return int64((n + pageSize - 1) / pageSize) }

func assertSameIDs(t *testing.T, got []Organization, want map[string]bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d organizations, want %d", len(got), len(want))
	}
	seen := map[string]bool{}
	for _, o := range got {
		if !want[o.ID] {
			t.Fatalf("unexpected organization %q", o.ID)
		}
		if seen[o.ID] {
			t.Fatalf("organization %q returned twice", o.ID)
		}
		seen[o.ID] = true
	}
}

func TestListOrganizationsReadsEveryPage(t *testing.T) {
	s := newSim(t)
	want := seedBulk(t, s)
	c := newTestClient(t, s, nil)

	got, err := c.ListOrganizations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	assertSameIDs(t, got, want)
	if n := s.Calls("GET /api/organizations"); n != pagesFor(bulkOrganizations) {
		t.Errorf("%d page requests, want %d", n, pagesFor(bulkOrganizations))
	}
	if n := s.Calls("POST /oidc/token"); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	for _, o := range got {
		if o.Name == "" || (o.Name != "Owner" && orgData(t, o)["createdBy"] == nil) {
			t.Fatalf("organization decoded badly: %+v", o)
		}
	}
}

func TestListOrganizationsReconcilesAfterReshuffle(t *testing.T) {
	s := newSim(t)
	want := seedBulk(t, s)
	// During the first pass, the order changes before every page, as
	// concurrent writes do to a Postgres scan without ORDER BY.
	var requests atomic.Int64
	firstPass := pagesFor(bulkOrganizations)
	hc := hookedClient(func(r *http.Request) {
		if isOrgListing(r) && requests.Add(1) <= firstPass {
			s.Faults().ReshuffleOrganizations()
		}
	}, nil)
	c := newTestClient(t, s, func(cfg *Config) { cfg.HTTPClient = hc })

	got, err := c.ListOrganizations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	assertSameIDs(t, got, want)
	if n := s.Calls("GET /api/organizations"); n != 2*firstPass {
		t.Errorf("%d page requests, want two passes (%d)", n, 2*firstPass)
	}
}

func TestListOrganizationsRecoversFromListingAnomalies(t *testing.T) {
	cases := map[string]func(*logtotest.Faults){
		"duplicates across pages": func(f *logtotest.Faults) { f.DuplicateAcrossPages(2) },
		"short page":              func(f *logtotest.Faults) { f.ShortPages(1) },
		"total drifts up":         func(f *logtotest.Faults) { f.DriftTotalNumber(1, 1) },
		"total drifts down":       func(f *logtotest.Faults) { f.DriftTotalNumber(1, -1) },
	}
	const n = 450
	for name, inject := range cases {
		t.Run(name, func(t *testing.T) {
			s := newSim(t)
			want := seedOrganizations(t, s, n)
			c := newTestClient(t, s, nil)
			inject(s.Faults())

			got, err := c.ListOrganizations(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			assertSameIDs(t, got, want)
			if calls := s.Calls("GET /api/organizations"); calls <= pagesFor(n) {
				t.Errorf("%d page requests: the anomaly went unnoticed", calls)
			}
		})
	}
}

func TestListOrganizationsNeverReturnsAPartialList(t *testing.T) {
	s := newSim(t)
	seedBulk(t, s)
	s.Faults().SetReshuffleEveryPage(true)
	const attempts = 3
	c := newTestClient(t, s, func(cfg *Config) { cfg.ListAttempts = attempts })

	got, err := c.ListOrganizations(context.Background())
	if !errors.Is(err, ErrInconsistentListing) {
		t.Fatalf("err = %v, want ErrInconsistentListing", err)
	}
	if got != nil {
		t.Errorf("returned %d organizations alongside the error", len(got))
	}
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindInconsistentListing || e.Op != "GET /api/organizations" {
		t.Errorf("error %#v", err)
	}
	if n := s.Calls("GET /api/organizations"); n != attempts*pagesFor(bulkOrganizations) {
		t.Errorf("%d page requests, want %d full passes", n, attempts)
	}
	if st := c.BreakerStates()[GroupOrganizations]; st != BreakerClosed {
		t.Errorf("an unstable listing is not Logto trouble, breaker %s", st)
	}
}

func TestListOrganizationsEmpty(t *testing.T) {
	s := newSim(t)
	c := newTestClient(t, s, nil)
	got, err := c.ListOrganizations(context.Background())
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
	if n := s.Calls("GET /api/organizations"); n != 1 {
		t.Errorf("%d requests for an empty listing", n)
	}
}
