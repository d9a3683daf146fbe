package cache_test

import (
	"runtime"
	"sync"
	"testing"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// usersFixture is the benchmark population: 100,000 users over the
// ~100,000-organization benchmark tree, generated once per test binary.
type usersFixture struct {
	records  []cache.UserRecord
	tree     *hierarchy.Tree
	ix       *cache.UserIndex
	users    *cache.Users
	owner    hierarchy.Principal
	dist     hierarchy.Principal // a distributor with a large subtree
	service  hierarchy.Principal // a tree-wide service
	customer string              // a customer with users
	someID   string              // a user the distributor sees
}

const benchUsers = 100_000

var usersBench = sync.OnceValue(func() *usersFixture {
	orgs := hierarchytest.RandomRecords(1, hierarchytest.Large())
	f := &usersFixture{tree: hierarchy.Build(orgs, hierarchy.Options{})}
	ids := make([]string, len(orgs))
	for i, o := range orgs {
		ids[i] = o.ID
	}
	f.records = cache.GenUsers(ids, f.tree.OwnerID(), benchUsers, 1)
	f.ix = cache.NewUserIndex(f.records)
	f.users = cache.BindIndex(f.ix, f.tree)
	f.owner = hierarchy.Principal{OrgID: f.tree.OwnerID(), Role: hierarchy.RoleOwner}
	f.service = hierarchy.Principal{Service: true, TreeWide: true}
	for _, o := range orgs {
		org, _ := f.tree.Org(o.ID)
		if org.Type == hierarchy.TypeDistributor && !org.Deleted() && org.CustomersCount > 900 {
			f.dist = hierarchy.Principal{OrgID: org.LogtoID, Role: hierarchy.RoleDistributor}
			break
		}
	}
	page := f.users.List(f.dist, cache.UserQuery{PageSize: 1, Page: 100})
	f.someID = page.Users[0].ID
	f.customer = page.Users[0].HomeOrgID
	return f
})

func benchList(b *testing.B, p func(*usersFixture) hierarchy.Principal, q func(*usersFixture) cache.UserQuery) {
	f := usersBench()
	pr, query := p(f), q(f)
	if got := f.users.List(pr, query); len(got.Users) == 0 {
		b.Fatalf("the benchmark query matches nothing: %+v", query)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.users.List(pr, query)
	}
}

func owner(f *usersFixture) hierarchy.Principal       { return f.owner }
func distributor(f *usersFixture) hierarchy.Principal { return f.dist }

func BenchmarkUsersOwnerFirstPage(b *testing.B) {
	benchList(b, owner, func(*usersFixture) cache.UserQuery { return cache.UserQuery{PageSize: 20} })
}

func BenchmarkUsersOwnerDeepPageByName(b *testing.B) {
	benchList(b, owner, func(*usersFixture) cache.UserQuery {
		return cache.UserQuery{SortBy: "name", Page: 2000, PageSize: 20}
	})
}

func BenchmarkUsersOwnerSearch(b *testing.B) {
	benchList(b, owner, func(*usersFixture) cache.UserQuery { return cache.UserQuery{Search: "ROSSI.12", PageSize: 20} })
}

func BenchmarkUsersOwnerSuspendedByOrganization(b *testing.B) {
	benchList(b, owner, func(*usersFixture) cache.UserQuery {
		return cache.UserQuery{Status: []string{"suspended"}, SortBy: "organization", PageSize: 50}
	})
}

func BenchmarkUsersDistributorFirstPageByName(b *testing.B) {
	benchList(b, distributor, func(*usersFixture) cache.UserQuery { return cache.UserQuery{SortBy: "name", PageSize: 20} })
}

func BenchmarkUsersDistributorRoleFilter(b *testing.B) {
	benchList(b, distributor, func(*usersFixture) cache.UserQuery {
		return cache.UserQuery{RoleIDs: []string{"role-support"}, Search: "a", PageSize: 20}
	})
}

func BenchmarkUsersServiceCustomerMembers(b *testing.B) {
	benchList(b, func(f *usersFixture) hierarchy.Principal { return f.service }, func(f *usersFixture) cache.UserQuery {
		return cache.UserQuery{OrganizationIDs: []string{f.customer}}
	})
}

func BenchmarkUsersFind(b *testing.B) {
	f := usersBench()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := f.users.Find(f.dist, f.someID); !ok {
			b.Fatal("not found")
		}
	}
}

// BenchmarkUsersIndex100k is the cost of indexing a snapshot (once per
// users generation, in the background or on a replica's load).
func BenchmarkUsersIndex100k(b *testing.B) {
	f := usersBench()
	b.ReportAllocs()
	for b.Loop() {
		cache.NewUserIndex(f.records)
	}
}

// BenchmarkUsersBind100k is the cost of binding an index to a new tree
// (once per hierarchy generation, on the first user read after it).
func BenchmarkUsersBind100k(b *testing.B) {
	f := usersBench()
	b.ReportAllocs()
	for b.Loop() {
		cache.BindIndex(f.ix, f.tree)
	}
}

func BenchmarkUsersSnapshotEncode100k(b *testing.B) {
	f := usersBench()
	c, err := cache.NewUsersCodec()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var size int
	b.ReportAllocs()
	for b.Loop() {
		blob, err := c.Encode(f.records)
		if err != nil {
			b.Fatal(err)
		}
		size = len(blob)
	}
	b.ReportMetric(float64(size), "bytes/snapshot")
}

func BenchmarkUsersSnapshotDecode100k(b *testing.B) {
	f := usersBench()
	c, err := cache.NewUsersCodec()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	blob, err := c.Encode(f.records)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if n, err := c.Decode(blob); err != nil || n != benchUsers {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkUsersOwnerShortSearch(b *testing.B) {
	benchList(b, owner, func(*usersFixture) cache.UserQuery { return cache.UserQuery{Search: "zo", PageSize: 20} })
}

func BenchmarkUsersOwnerRoleFilter(b *testing.B) {
	benchList(b, owner, func(*usersFixture) cache.UserQuery {
		return cache.UserQuery{RoleIDs: []string{"role-support"}, SortBy: "email", PageSize: 20}
	})
}

// BenchmarkUsersMemory reports the heap an index and its binding retain per
// user, beyond the records themselves.
func BenchmarkUsersMemory(b *testing.B) {
	f := usersBench()
	var before, after runtime.MemStats
	var u *cache.Users
	for b.Loop() {
		u = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		u = cache.BindIndex(cache.NewUserIndex(f.records), f.tree)
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/float64(u.Len()), "B/user")
	runtime.KeepAlive(u)
}
