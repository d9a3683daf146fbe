package hierarchy_test

import (
	"runtime"
	"sync"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// largeFixture is the ~100k-organization benchmark tree, generated once per
// test binary (a fixture, not package state shared with the code under test).
type largeFixture struct {
	records []hierarchy.Record
	tree    *hierarchy.Tree
	dist    hierarchy.Principal // a distributor of average size
	owner   hierarchy.Principal
	custID  string // a customer under dist
}

var large = sync.OnceValue(func() *largeFixture {
	f := &largeFixture{records: hierarchytest.RandomRecords(1, hierarchytest.Large())}
	f.tree = hierarchy.Build(f.records, hierarchy.Options{})
	f.owner = hierarchy.Principal{OrgID: f.tree.OwnerID(), Role: hierarchy.RoleOwner}
	for _, r := range f.records {
		o, _ := f.tree.Org(r.ID)
		if o.Type == hierarchy.TypeDistributor && !o.Deleted() && o.CustomersCount > 900 {
			f.dist = hierarchy.Principal{OrgID: o.LogtoID, Role: hierarchy.RoleDistributor}
			break
		}
	}
	page := f.tree.List(f.dist, hierarchy.TypeCustomer, hierarchy.Query{PageSize: 1, Page: 500})
	if len(page.Orgs) == 1 {
		f.custID = page.Orgs[0].LogtoID
	}
	return f
})

func BenchmarkBuild100k(b *testing.B) {
	f := large()
	b.ReportAllocs()
	for b.Loop() {
		hierarchy.Build(f.records, hierarchy.Options{})
	}
	b.ReportMetric(float64(len(f.records)), "orgs")
}

// BenchmarkMemoryPerOrg reports the heap retained by a Tree per organization,
// in total and beyond the organization's own customData bytes.
func BenchmarkMemoryPerOrg(b *testing.B) {
	f := large()
	cd := 0
	for _, r := range f.records {
		cd += len(r.CustomData)
	}
	var before, after runtime.MemStats
	var t *hierarchy.Tree
	for b.Loop() {
		t = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		t = hierarchy.Build(f.records, hierarchy.Options{})
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	n := float64(t.Len())
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	b.ReportMetric(heap/n, "B/org")
	b.ReportMetric((heap-float64(cd))/n, "B/org-beyond-customData")
	b.ReportMetric(float64(cd)/n, "customData-B/org")
	runtime.KeepAlive(t)
}

func BenchmarkCanSee(b *testing.B) {
	f := large()
	b.ReportAllocs()
	for b.Loop() {
		if !f.tree.CanSee(f.dist, f.custID) {
			b.Fatal("distributor cannot see its customer")
		}
	}
}

func BenchmarkDistributorFirstPageByName(b *testing.B) {
	f := large()
	q := hierarchy.Query{SortBy: "name", Page: 1, PageSize: 20}
	b.ReportAllocs()
	for b.Loop() {
		if p := f.tree.List(f.dist, hierarchy.TypeCustomer, q); len(p.Orgs) != 20 {
			b.Fatalf("got %d orgs", len(p.Orgs))
		}
	}
}

func BenchmarkOwnerSearchPage(b *testing.B) {
	f := large()
	q := hierarchy.Query{Search: "rossi", Page: 2, PageSize: 50}
	b.ReportAllocs()
	for b.Loop() {
		if p := f.tree.List(f.owner, hierarchy.TypeCustomer, q); len(p.Orgs) == 0 {
			b.Fatal("no match")
		}
	}
}

func BenchmarkOwnerOrganizationsPicker(b *testing.B) {
	f := large()
	q := hierarchy.OrgQuery{Search: "acme", Page: 1, PageSize: 50}
	b.ReportAllocs()
	for b.Loop() {
		if p := f.tree.ListOrganizations(f.owner, q); len(p.Orgs) == 0 {
			b.Fatal("no match")
		}
	}
}

// BenchmarkFirstPageByLazyOrder is the one-time cost a fresh Tree pays the
// first time a list is sorted by a key Build does not order eagerly.
func BenchmarkFirstPageByLazyOrder(b *testing.B) {
	f := large()
	q := hierarchy.Query{SortBy: "description", Page: 1, PageSize: 20}
	for b.Loop() {
		b.StopTimer()
		t := hierarchy.Build(f.records, hierarchy.Options{})
		b.StartTimer()
		if p := t.List(f.owner, hierarchy.TypeCustomer, q); len(p.Orgs) != 20 {
			b.Fatalf("got %d orgs", len(p.Orgs))
		}
	}
}

// BenchmarkOwnerFirstPageDefault is the dashboard's default customers page
// for the Owner: every customer is a candidate.
func BenchmarkOwnerFirstPageDefault(b *testing.B) {
	f := large()
	q := hierarchy.Query{Status: []string{"enabled", "suspended"}, Page: 1, PageSize: 20}
	b.ReportAllocs()
	for b.Loop() {
		if p := f.tree.List(f.owner, hierarchy.TypeCustomer, q); len(p.Orgs) != 20 {
			b.Fatalf("got %d orgs", len(p.Orgs))
		}
	}
}
