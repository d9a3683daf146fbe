package hierarchytest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func TestRandomRecordsIsDeterministic(t *testing.T) {
	a := RandomRecords(42, Messy(2))
	b := RandomRecords(42, Messy(2))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different records")
	}
	if reflect.DeepEqual(a, RandomRecords(43, Messy(2))) {
		t.Fatal("different seeds, same records")
	}
}

func TestCleanShapeBuildsWithoutProblems(t *testing.T) {
	shape := Shape{Distributors: 5, ResellersPerDistributor: 4, CustomersPerReseller: 6, DirectCustomersPerDistributor: 2}
	recs := RandomRecords(1, shape)
	if recs[0].Name != OwnerName || len(recs[0].CustomData) == 0 {
		t.Fatalf("first record %+v is not the Owner", recs[0])
	}
	tree := hierarchy.Build(recs, hierarchy.Options{})
	st := tree.Stats()
	if st.Problems.Total() != 0 || st.Orphans != 0 || st.Deleted != 0 || st.Suspended != 0 {
		t.Fatalf("clean shape gave %+v", st)
	}
	if st.Distributors != 5 || st.Resellers < 5*2 || st.Resellers > 5*6 || st.Customers < st.Resellers*3 {
		t.Fatalf("unexpected sizes %+v", st)
	}
	for _, r := range recs {
		var cd map[string]any
		if err := json.Unmarshal(r.CustomData, &cd); err != nil {
			t.Fatalf("%s: %v", r.ID, err)
		}
	}
}

func TestMessyShapeHasEveryKindOfProblem(t *testing.T) {
	tree := hierarchy.Build(RandomRecords(3, Messy(4)), hierarchy.Options{})
	st := tree.Stats()
	for name, n := range st.Problems.All() {
		switch name {
		case "empty_id", "owner_missing", "duplicate_owner", "bad_field":
			continue // never generated
		}
		if n == 0 {
			t.Errorf("no %s problem generated: %+v", name, st.Problems)
		}
	}
	if st.Deleted == 0 || st.Suspended == 0 || st.Orphans == 0 {
		t.Errorf("no state generated: %+v", st)
	}
}

func TestLargeIsAbout100k(t *testing.T) {
	s := Large()
	mean := s.Distributors * (1 + s.ResellersPerDistributor*(1+s.CustomersPerReseller) + s.DirectCustomersPerDistributor)
	if mean < 95_000 || mean > 110_000 {
		t.Fatalf("Large() averages %d organizations", mean)
	}
}
