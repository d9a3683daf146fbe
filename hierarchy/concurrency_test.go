package hierarchy_test

import (
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// TestParallelParseMatchesSequential builds a tree large enough for Build to
// parse on several goroutines, and compares it with a one-CPU build.
func TestParallelParseMatchesSequential(t *testing.T) {
	recs := hierarchytest.RandomRecords(5, hierarchytest.Messy(80))
	if len(recs) < 4096 {
		t.Fatalf("only %d records: too few to parse in parallel", len(recs))
	}
	prev := runtime.GOMAXPROCS(1)
	seq := hierarchy.Build(recs, hierarchy.Options{})
	runtime.GOMAXPROCS(4)
	par := hierarchy.Build(recs, hierarchy.Options{})
	runtime.GOMAXPROCS(prev)

	if seq.Stats() != par.Stats() {
		t.Fatalf("stats differ: %+v vs %+v", seq.Stats(), par.Stats())
	}
	for _, r := range recs {
		a, _ := seq.Org(r.ID)
		b, _ := par.Org(r.ID)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differs:\n%+v\n%+v", r.ID, a, b)
		}
	}
}

// TestConcurrentQueries runs the same queries from many goroutines (they
// share the Tree's bitset pool) and expects the sequential answers.
func TestConcurrentQueries(t *testing.T) {
	recs := hierarchytest.RandomRecords(9, hierarchytest.Messy(4))
	tree := hierarchy.Build(recs, hierarchy.Options{})
	owner := principal(tree.OwnerID(), hierarchy.RoleOwner)
	queries := []hierarchy.Query{
		{SortBy: "name"}, {SortBy: "created_at", SortDirection: "desc", Page: 2, PageSize: 5},
		{Search: "a", Status: []string{"deleted", "suspended"}}, {SortBy: "creator_name", PageSize: 100},
	}
	want := make([][]string, len(queries))
	for i, q := range queries {
		want[i] = ids(tree.List(owner, hierarchy.TypeCustomer, q))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(queries)
				if got := ids(tree.List(owner, hierarchy.TypeCustomer, queries[i])); !slices.Equal(got, want[i]) {
					errs <- "concurrent answer differs"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
