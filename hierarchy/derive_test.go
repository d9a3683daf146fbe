package hierarchy_test

import (
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func ts(day int) string { return time.Date(2024, 6, day, 0, 0, 0, 0, time.UTC).Format(time.RFC3339) }

func at(day int) time.Time { return time.Date(2024, 6, day, 0, 0, 0, 0, time.UTC) }

func TestSuspension(t *testing.T) {
	// want is the expected (suspended_at day, suspended_by_org_id) per org;
	// day 0 means not suspended.
	type want struct {
		day int
		by  string
	}
	tests := []struct {
		name string
		recs []hierarchy.Record
		want map[string]want
	}{
		{
			name: "direct suspension has no origin",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", nil),
				rec("r", "R", "reseller", "d", cd{"suspendedAt": ts(3)}),
				rec("c", "C", "customer", "r", nil),
				rec("c2", "C2", "customer", "d", nil),
			},
			want: map[string]want{"d": {}, "r": {3, ""}, "c": {3, "r"}, "c2": {}},
		},
		{
			name: "a distributor's suspension cascades two levels",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"suspendedAt": ts(1)}),
				rec("r", "R", "reseller", "d", nil),
				rec("c", "C", "customer", "r", nil),
				rec("c2", "C2", "customer", "d", nil),
			},
			want: map[string]want{"d": {1, ""}, "r": {1, "d"}, "c": {1, "d"}, "c2": {1, "d"}},
		},
		{
			name: "the nearest directly suspended ancestor wins; own suspension wins",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"suspendedAt": ts(1)}),
				rec("r", "R", "reseller", "d", cd{"suspendedAt": ts(5)}),
				rec("c", "C", "customer", "r", nil),
				rec("c2", "C2", "customer", "r", cd{"suspendedAt": ts(9)}),
			},
			want: map[string]want{"d": {1, ""}, "r": {5, ""}, "c": {5, "r"}, "c2": {9, ""}},
		},
		{
			name: "deletion breaks the cascade; deleted organizations inherit nothing",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"suspendedAt": ts(1)}),
				rec("r", "R", "reseller", "d", cd{"deletedAt": ts(2)}),
				rec("c", "C", "customer", "r", nil),
				rec("x", "X", "customer", "d", cd{"deletedAt": ts(2)}),
				rec("y", "Y", "customer", "d", cd{"deletedAt": ts(2), "suspendedAt": ts(7)}),
			},
			want: map[string]want{"d": {1, ""}, "r": {}, "c": {}, "x": {}, "y": {7, ""}},
		},
		{
			name: "orphans inherit nothing",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"suspendedAt": ts(1)}),
				rec("rr", "RR", "reseller", "c", nil),
				rec("c", "C", "customer", "d", nil),
			},
			want: map[string]want{"c": {1, "d"}, "rr": {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := hierarchy.Build(tt.recs, hierarchy.Options{})
			for id, w := range tt.want {
				o := mustOrg(t, tree, id)
				if w.day == 0 {
					if o.Suspended() || o.SuspendedByOrgID != "" {
						t.Errorf("%s: suspended at %v by %q, want not suspended", id, o.SuspendedAt, o.SuspendedByOrgID)
					}
					continue
				}
				if !o.SuspendedAt.Equal(at(w.day)) || o.SuspendedByOrgID != w.by {
					t.Errorf("%s: suspended at %v by %q, want %v by %q", id, o.SuspendedAt, o.SuspendedByOrgID, at(w.day), w.by)
				}
			}
		})
	}
}

func TestRebranding(t *testing.T) {
	on := cd{"rebrandingEnabled": true}
	tests := []struct {
		name string
		recs []hierarchy.Record
		want map[string]string // org → rebranding_org_id ("" = disabled)
	}{
		{
			name: "self, parent, grandparent, nearest first",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", on),
				rec("r", "R", "reseller", "d", nil),
				rec("r2", "R2", "reseller", "d", on),
				rec("c", "C", "customer", "r", nil),
				rec("c2", "C2", "customer", "r2", nil),
				rec("c3", "C3", "customer", "r2", on),
				rec("c4", "C4", "customer", "d", nil),
			},
			want: map[string]string{"d": "d", "r": "d", "r2": "r2", "c": "d", "c2": "r2", "c3": "c3", "c4": "d"},
		},
		{
			name: "never the owner",
			recs: []hierarchy.Record{
				rec("own", "Owner", "", "", on),
				rec("d", "D", "distributor", "own", nil),
				rec("c", "C", "customer", "d", nil),
			},
			want: map[string]string{"own": "", "d": "", "c": ""},
		},
		{
			name: "never a soft-deleted one, and deletion breaks the chain",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", on),
				rec("r", "R", "reseller", "d", cd{"rebrandingEnabled": true, "deletedAt": ts(1)}),
				rec("c", "C", "customer", "r", nil),
				rec("x", "X", "customer", "d", cd{"rebrandingEnabled": true, "deletedAt": ts(1)}),
				rec("r2", "R2", "reseller", "d", cd{"deletedAt": ts(1)}),
				rec("c2", "C2", "customer", "r2", nil),
			},
			want: map[string]string{"d": "d", "r": "", "c": "", "x": "", "r2": "", "c2": ""},
		},
		{
			name: "suspension does not matter",
			recs: []hierarchy.Record{
				owner(),
				rec("d", "D", "distributor", "own", cd{"rebrandingEnabled": true, "suspendedAt": ts(1)}),
				rec("c", "C", "customer", "d", nil),
			},
			want: map[string]string{"d": "d", "c": "d"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := hierarchy.Build(tt.recs, hierarchy.Options{})
			for id, want := range tt.want {
				o := mustOrg(t, tree, id)
				if o.RebrandingOrgID != want || o.RebrandingEnabled() != (want != "") {
					t.Errorf("%s: rebranding %q (enabled %v), want %q", id, o.RebrandingOrgID, o.RebrandingEnabled(), want)
				}
			}
		})
	}
}

func TestCounts(t *testing.T) {
	recs := append(fixture(),
		rec("c6", "Deleted customer", "customer", "r1", cd{"deletedAt": ts(1)}),
		rec("c7", "Suspended customer", "customer", "d1", cd{"suspendedAt": ts(1)}),
		rec("r4", "Empty reseller", "reseller", "d1", nil),
		rec("o1", "Orphan", "customer", "ghost", nil),
	)
	tree := hierarchy.Build(recs, hierarchy.Options{})
	tests := []struct {
		id                   string
		resellers, customers int
	}{
		// d1: resellers r1, r4 (r2 is deleted); customers c1, c2 (r1), c4, c7
		// (direct); c3 is under the deleted r2, c6 is deleted.
		{"d1", 2, 4},
		{"r1", 0, 2},
		{"r2", 0, 1}, // a deleted reseller still reports its own customers
		{"r4", 0, 0},
		{"d2", 1, 1},
		{"r3", 0, 1},
		{"c1", 0, 0},
	}
	for _, tt := range tests {
		o := mustOrg(t, tree, tt.id)
		if o.ResellersCount != tt.resellers || o.CustomersCount != tt.customers {
			t.Errorf("%s: resellers %d customers %d, want %d %d", tt.id, o.ResellersCount, o.CustomersCount, tt.resellers, tt.customers)
		}
	}
}

func TestDeletionBreaksVisibility(t *testing.T) {
	tree := hierarchy.Build(fixture(), hierarchy.Options{})
	d1 := principal("d1", hierarchy.RoleDistributor)
	if !tree.CanSee(d1, "r2") {
		t.Error("d1 no longer sees its deleted reseller (needed for status=deleted)")
	}
	if tree.CanSee(d1, "c3") {
		t.Error("d1 still sees the customer of its deleted reseller")
	}
	if !tree.CanSee(principal("own", hierarchy.RoleOwner), "c3") {
		t.Error("the owner lost c3")
	}
	if tree.CanSee(principal("r2", hierarchy.RoleReseller), "r2") || tree.CanSee(principal("r2", hierarchy.RoleReseller), "c3") {
		t.Error("a deleted organization still sees")
	}
	deleted := tree.List(d1, hierarchy.TypeReseller, hierarchy.Query{Status: []string{"deleted"}})
	if got := ids(deleted); len(got) != 1 || got[0] != "r2" {
		t.Errorf("d1 deleted resellers = %v", got)
	}
}
