package hierarchy_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

func TestBuildEmptyAndNil(t *testing.T) {
	for _, recs := range [][]hierarchy.Record{nil, {}} {
		tree := hierarchy.Build(recs, hierarchy.Options{})
		if tree.Len() != 0 || tree.OwnerID() != "" || tree.Stats().Problems.OwnerMissing != 1 {
			t.Fatalf("empty tree: len %d owner %q stats %+v", tree.Len(), tree.OwnerID(), tree.Stats())
		}
		p := tree.List(principal("x", hierarchy.RoleOwner), hierarchy.TypeCustomer, hierarchy.Query{})
		if p.Orgs == nil || len(p.Orgs) != 0 || p.Total != 0 {
			t.Fatalf("empty list = %+v", p)
		}
	}
}

func TestOwnerRule(t *testing.T) {
	tests := []struct {
		name      string
		recs      []hierarchy.Record
		opts      hierarchy.Options
		wantOwner string
		problems  hierarchy.Problems
	}{
		{
			name:      "named Owner without type",
			recs:      []hierarchy.Record{owner(), rec("d", "D", "distributor", "own", nil)},
			wantOwner: "own",
		},
		{
			name:      "name in any case, empty type",
			recs:      []hierarchy.Record{rec("o", "OWNER", "", "", cd{"type": ""}), rec("d", "D", "distributor", "o", nil)},
			wantOwner: "o",
		},
		{
			name: "a typed organization named Owner is not the Owner",
			recs: []hierarchy.Record{rec("o", "Owner", "customer", "", nil)},
			problems: hierarchy.Problems{
				OwnerMissing: 1, ParentMissing: 1,
			},
		},
		{
			name:      "several candidates: smallest id wins, the others are customers",
			recs:      []hierarchy.Record{rec("o2", "Owner", "", "", nil), rec("o1", "Owner", "", "", nil)},
			wantOwner: "o1",
			problems:  hierarchy.Problems{DuplicateOwner: 1, UnknownType: 1, ParentMissing: 1},
		},
		{
			name:      "OwnerID option wins over the name",
			recs:      []hierarchy.Record{owner(), rec("boss", "Boss", "distributor", "", nil), rec("d", "D", "distributor", "boss", nil)},
			opts:      hierarchy.Options{OwnerID: "boss"},
			wantOwner: "boss",
			// "own" is now an untyped organization without parent.
			problems: hierarchy.Problems{UnknownType: 1, ParentMissing: 1},
		},
		{
			name:      "OwnerID option without its record",
			recs:      []hierarchy.Record{rec("d", "D", "distributor", "boss", nil)},
			opts:      hierarchy.Options{OwnerID: "boss"},
			wantOwner: "boss",
			problems:  hierarchy.Problems{OwnerMissing: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := hierarchy.Build(tt.recs, tt.opts)
			if tree.OwnerID() != tt.wantOwner {
				t.Errorf("owner = %q, want %q", tree.OwnerID(), tt.wantOwner)
			}
			if got := tree.Stats().Problems; got != tt.problems {
				t.Errorf("problems = %+v, want %+v", got, tt.problems)
			}
			if tt.wantOwner == "" {
				return
			}
			// The Owner sees everything and is never listed.
			p := principal(tt.wantOwner, hierarchy.RoleOwner)
			for _, r := range tt.recs {
				if !tree.CanSee(p, r.ID) {
					t.Errorf("owner cannot see %s", r.ID)
				}
			}
			all := tree.ListOrganizations(p, hierarchy.OrgQuery{})
			for _, o := range all.Orgs {
				if o.LogtoID == tt.wantOwner {
					t.Errorf("owner listed in /organizations")
				}
			}
		})
	}
}

func TestOwnerIgnoresStateKeys(t *testing.T) {
	recs := []hierarchy.Record{
		rec("own", "Owner", "", "", cd{"deletedAt": "2024-01-01T00:00:00Z", "suspendedAt": "2024-01-01T00:00:00Z", "rebrandingEnabled": true}),
		rec("d", "D", "distributor", "own", nil),
	}
	tree := hierarchy.Build(recs, hierarchy.Options{})
	o := mustOrg(t, tree, "own")
	if o.Type != hierarchy.TypeOwner || o.Deleted() || o.Suspended() || o.RebrandingEnabled() {
		t.Fatalf("owner = %+v", o)
	}
	if d := mustOrg(t, tree, "d"); d.RebrandingEnabled() || d.Suspended() {
		t.Fatalf("distributor inherited from the owner: %+v", d)
	}
	if !tree.CanSee(principal("own", hierarchy.RoleOwner), "d") {
		t.Fatal("owner with deletedAt lost its view")
	}
}

func TestBadDataRules(t *testing.T) {
	tests := []struct {
		name     string
		recs     []hierarchy.Record
		problems hierarchy.Problems
		orphans  int
		// check inspects the tree further.
		check func(t *testing.T, tree *hierarchy.Tree)
	}{
		{
			name:     "empty id dropped",
			recs:     []hierarchy.Record{owner(), rec("", "Nameless", "distributor", "own", nil)},
			problems: hierarchy.Problems{EmptyID: 1},
			check: func(t *testing.T, tree *hierarchy.Tree) {
				if tree.Len() != 1 {
					t.Errorf("len = %d, want only the owner", tree.Len())
				}
			},
		},
		{
			name: "duplicate ids: latest updatedAt wins",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "Old", "distributor", "own", cd{"updatedAt": "2024-01-01T00:00:00Z"}),
				rec("d", "New", "distributor", "own", cd{"updatedAt": "2024-02-01T00:00:00Z"}),
				rec("d", "Older", "distributor", "own", nil),
			},
			problems: hierarchy.Problems{DuplicateID: 2},
			check: func(t *testing.T, tree *hierarchy.Tree) {
				if o := mustOrg(t, tree, "d"); o.Name != "New" {
					t.Errorf("kept %q, want New", o.Name)
				}
			},
		},
		{
			name: "malformed customData reads as {}",
			recs: []hierarchy.Record{
				owner(),
				{ID: "x", Name: "Broken", CustomData: json.RawMessage(`{"type":"reseller",`)},
				{ID: "y", Name: "Array", CustomData: json.RawMessage(`["type"]`)},
				{ID: "z", Name: "Null", CustomData: json.RawMessage(`null`)},
				{ID: "w", Name: "Absent"},
			},
			problems: hierarchy.Problems{MalformedCustomData: 2, UnknownType: 4, ParentMissing: 4},
			orphans:  4,
			check: func(t *testing.T, tree *hierarchy.Tree) {
				for _, id := range []string{"x", "y", "z", "w"} {
					o := mustOrg(t, tree, id)
					if string(o.CustomData) != "{}" || o.Type != hierarchy.TypeCustomer {
						t.Errorf("%s: custom_data %s type %v", id, o.CustomData, o.Type)
					}
				}
			},
		},
		{
			name: "missing and unknown types are customers",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", nil),
				rec("a", "A", "", "d", nil),
				rec("b", "B", "partner", "d", nil),
				rec("c", "C", "owner", "d", nil),
				rec("e", "E", "RESELLER", "d", nil),
			},
			problems: hierarchy.Problems{UnknownType: 3},
			check: func(t *testing.T, tree *hierarchy.Tree) {
				for id, want := range map[string]hierarchy.Type{"a": hierarchy.TypeCustomer, "b": hierarchy.TypeCustomer, "c": hierarchy.TypeCustomer, "e": hierarchy.TypeReseller} {
					if o := mustOrg(t, tree, id); o.Type != want {
						t.Errorf("%s: type %v, want %v", id, o.Type, want)
					}
				}
				if !tree.CanSee(principal("d", hierarchy.RoleDistributor), "a") {
					t.Error("an untyped customer under d is not visible to d")
				}
			},
		},
		{
			name: "parent missing: orphan visible to the owner only",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", nil),
				rec("r", "R", "reseller", "ghost", nil),
				rec("c", "C", "customer", "r", nil),
				rec("n", "N", "customer", "", nil),
			},
			problems: hierarchy.Problems{ParentMissing: 2},
			orphans:  2,
			check: func(t *testing.T, tree *hierarchy.Tree) {
				if tree.CanSee(principal("d", hierarchy.RoleDistributor), "r") {
					t.Error("d sees an orphan")
				}
				// An orphan is still the root of its own subtree.
				if !tree.CanSee(principal("r", hierarchy.RoleReseller), "c") {
					t.Error("orphan reseller does not see its customer")
				}
				if !tree.CanSee(principal("own", hierarchy.RoleOwner), "n") {
					t.Error("owner does not see an orphan")
				}
			},
		},
		{
			name: "wrong levels are orphans",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", nil),
				rec("r", "R", "reseller", "d", nil),
				rec("c", "C", "customer", "r", nil),
				rec("rr", "R under R", "reseller", "r", nil),
				rec("dc", "D under C", "distributor", "c", nil),
				rec("co", "C under owner", "customer", "own", nil),
				rec("ro", "R under owner", "reseller", "own", nil),
				rec("cc", "C under C", "customer", "c", nil),
			},
			problems: hierarchy.Problems{WrongLevel: 5},
			orphans:  5,
			check: func(t *testing.T, tree *hierarchy.Tree) {
				dp := principal("d", hierarchy.RoleDistributor)
				for _, id := range []string{"rr", "dc", "co", "ro", "cc"} {
					if tree.CanSee(dp, id) || tree.CanSee(principal("r", hierarchy.RoleReseller), id) {
						t.Errorf("%s is visible below the owner", id)
					}
				}
				if o := mustOrg(t, tree, "rr"); o.Type != hierarchy.TypeReseller {
					t.Errorf("rr kept type %v", o.Type)
				}
			},
		},
		{
			name: "cycles are broken and counted",
			recs: []hierarchy.Record{
				owner(),
				rec("a", "A", "customer", "b", nil),
				rec("b", "B", "customer", "a", nil),
				rec("s", "Self", "reseller", "s", nil),
				rec("x", "X", "reseller", "y", nil),
				rec("y", "Y", "distributor", "x", nil),
				rec("tail", "Tail", "customer", "a", nil),
			},
			// x → y is a proper reseller-under-distributor link; y → x is not.
			problems: hierarchy.Problems{WrongLevel: 5, Cycle: 5},
			orphans:  5,
			check: func(t *testing.T, tree *hierarchy.Tree) {
				if !tree.CanSee(principal("y", hierarchy.RoleDistributor), "x") {
					t.Error("the orphan distributor y does not see its reseller x")
				}
				if tree.CanSee(principal("a", hierarchy.RoleCustomer), "b") {
					t.Error("a customer sees another through a cycle")
				}
			},
		},
		{
			name: "bad timestamps fall back; bad state timestamps still apply",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"createdAt": "yesterday", "updatedAt": 12}),
				rec("e", "E", "distributor", "own", cd{"createdAt": "2024-02-01T00:00:00Z", "deletedAt": "soon", "suspendedAt": ""}),
				rec("f", "F", "distributor", "own", cd{"updatedAt": "2024-03-01T00:00:00Z", "suspendedAt": "2024-13-01T00:00:00Z", "deletedAt": nil}),
			},
			problems: hierarchy.Problems{BadTimestamp: 4},
			check: func(t *testing.T, tree *hierarchy.Tree) {
				d := mustOrg(t, tree, "d")
				if !d.CreatedAt.Equal(base) || !d.UpdatedAt.Equal(base) {
					t.Errorf("d times = %v %v, want Logto createdAt", d.CreatedAt, d.UpdatedAt)
				}
				e := mustOrg(t, tree, "e")
				if !e.Deleted() || !e.DeletedAt.Equal(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)) || e.Suspended() {
					t.Errorf("e deleted %v at %v suspended %v", e.Deleted(), e.DeletedAt, e.Suspended())
				}
				f := mustOrg(t, tree, "f")
				if !f.Suspended() || !f.SuspendedAt.Equal(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) || f.Deleted() {
					t.Errorf("f suspended %v at %v deleted %v", f.Suspended(), f.SuspendedAt, f.Deleted())
				}
			},
		},
		{
			name: "fields of the wrong JSON type",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"rebrandingEnabled": "true", "createdByUser": "alice"}),
				rec("c", "C", "customer", "", cd{"createdBy": 42}),
			},
			problems: hierarchy.Problems{BadField: 3, ParentMissing: 1},
			orphans:  1,
			check: func(t *testing.T, tree *hierarchy.Tree) {
				d := mustOrg(t, tree, "d")
				if d.RebrandingEnabled() || d.Creator != nil {
					t.Errorf("d = %+v", d)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := hierarchy.Build(tt.recs, hierarchy.Options{})
			if got := tree.Stats().Problems; got != tt.problems {
				t.Errorf("problems = %+v\nwant       %+v", got, tt.problems)
			}
			if got := tree.Stats().Orphans; got != tt.orphans {
				t.Errorf("orphans = %d, want %d", got, tt.orphans)
			}
			if tt.check != nil {
				tt.check(t, tree)
			}
		})
	}
}

func TestBuildIgnoresInputOrder(t *testing.T) {
	recs := hierarchytest.RandomRecords(7, hierarchytest.Messy(2))
	want := hierarchy.Build(recs, hierarchy.Options{})
	rng := rand.New(rand.NewPCG(1, 1))
	for range 5 {
		shuffled := append([]hierarchy.Record(nil), recs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := hierarchy.Build(shuffled, hierarchy.Options{})
		if got.Stats() != want.Stats() {
			t.Fatalf("stats differ: %+v vs %+v", got.Stats(), want.Stats())
		}
		for _, r := range recs {
			a, _ := want.Org(r.ID)
			b, _ := got.Org(r.ID)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("org %s differs:\n%+v\n%+v", r.ID, a, b)
			}
		}
		q := hierarchy.Query{SortBy: "name", PageSize: 100}
		owner := principal(want.OwnerID(), hierarchy.RoleOwner)
		if a, b := ids(want.List(owner, hierarchy.TypeCustomer, q)), ids(got.List(owner, hierarchy.TypeCustomer, q)); !reflect.DeepEqual(a, b) {
			t.Fatalf("list order differs")
		}
	}
}

func TestWireFields(t *testing.T) {
	recs := []hierarchy.Record{
		owner(),
		rec("d", "D", "distributor", "own", cd{
			"vat": "IT1", "promotedFrom": cd{"level": "reseller"},
			"createdByUser": cd{"user_id": "u", "name": "N"},
		}),
	}
	recs[1].Description = "desc"
	tree := hierarchy.Build(recs, hierarchy.Options{})
	d := mustOrg(t, tree, "d")
	if d.ID != hierarchy.OrgUUID("d") || d.LogtoID != "d" || d.Name != "D" || d.Description != "desc" || d.ParentID != "own" {
		t.Errorf("identity = %+v", d)
	}
	var got map[string]any
	if err := json.Unmarshal(d.CustomData, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["createdByUser"]; ok {
		t.Error("custom_data keeps createdByUser")
	}
	if _, ok := got["promotedFrom"]; ok {
		t.Error("distributor custom_data keeps promotedFrom")
	}
	if got["vat"] != "IT1" || got["type"] != "distributor" || got["createdBy"] != "own" {
		t.Errorf("custom_data = %v", got)
	}
	if string(d.PromotedFrom) != `{"level":"reseller"}` || d.Creator == nil || d.Creator.UserID != "u" {
		t.Errorf("promoted_from %s creator %+v", d.PromotedFrom, d.Creator)
	}
	if d.HasSuspendedByKey() {
		t.Error("distributors carry no suspended_by_org_id key")
	}
	if r := (hierarchy.Org{Type: hierarchy.TypeReseller}); !r.HasSuspendedByKey() {
		t.Error("resellers carry suspended_by_org_id")
	}
}

func TestStats(t *testing.T) {
	recs := fixture()
	recs = append(recs, rec("s", "Susp", "customer", "r1", cd{"suspendedAt": "2024-05-01T00:00:00Z"}))
	tree := hierarchy.Build(recs, hierarchy.Options{})
	got := tree.Stats()
	want := hierarchy.Stats{Organizations: 12, Distributors: 2, Resellers: 3, Customers: 6, Deleted: 1, Suspended: 1}
	if got != want {
		t.Fatalf("stats = %+v\nwant    %+v", got, want)
	}
	if tree.Len() != 12 || got.Problems.Total() != 0 {
		t.Fatalf("len %d problems %d", tree.Len(), got.Problems.Total())
	}
}

func TestProblemsReporting(t *testing.T) {
	p := hierarchy.Problems{DuplicateID: 2, Cycle: 3}
	if p.Total() != 5 {
		t.Errorf("total = %d", p.Total())
	}
	names := map[string]int{}
	for name, n := range p.All() {
		names[name] = n
	}
	if len(names) != 11 || names["duplicate_id"] != 2 || names["cycle"] != 3 {
		t.Errorf("All() = %v", names)
	}
	if got := p.LogValue().String(); got != "[duplicate_id=2 cycle=3]" {
		t.Errorf("LogValue = %s", got)
	}
}
