package hierarchy_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// base is the Logto createdAt of test records.
var base = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// cd is a customData object.
type cd map[string]any

// rec makes a record; typ and parent are omitted from customData when "".
func rec(id, name, typ, parent string, extra cd) hierarchy.Record {
	data := cd{}
	if typ != "" {
		data["type"] = typ
	}
	if parent != "" {
		data["createdBy"] = parent
	}
	for k, v := range extra {
		data[k] = v
	}
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return hierarchy.Record{ID: id, Name: name, CustomData: raw, CreatedAt: base}
}

// owner is the standard Owner record.
func owner() hierarchy.Record { return rec("own", "Owner", "", "", nil) }

// fixture is a small clean tree used by many tests:
//
//	own (Owner)
//	├── d1 distributor
//	│   ├── r1 reseller
//	│   │   ├── c1 customer
//	│   │   └── c2 customer
//	│   ├── r2 reseller (soft-deleted)
//	│   │   └── c3 customer
//	│   └── c4 customer (direct)
//	└── d2 distributor
//	    └── r3 reseller
//	        └── c5 customer
func fixture() []hierarchy.Record {
	deleted := cd{"deletedAt": "2024-03-01T00:00:00Z"}
	return []hierarchy.Record{
		owner(),
		rec("d1", "Dist One", "distributor", "own", nil),
		rec("r1", "Res One", "reseller", "d1", nil),
		rec("c1", "Cust One", "customer", "r1", nil),
		rec("c2", "Cust Two", "customer", "r1", nil),
		rec("r2", "Res Two", "reseller", "d1", deleted),
		rec("c3", "Cust Three", "customer", "r2", nil),
		rec("c4", "Cust Four", "customer", "d1", nil),
		rec("d2", "Dist Two", "distributor", "own", nil),
		rec("r3", "Res Three", "reseller", "d2", nil),
		rec("c5", "Cust Five", "customer", "r3", nil),
	}
}

// mustOrg looks an organization up or fails the test.
func mustOrg(t *testing.T, tree *hierarchy.Tree, id string) hierarchy.Org {
	t.Helper()
	o, ok := tree.Org(id)
	if !ok {
		t.Fatalf("organization %q not in the tree", id)
	}
	return o
}

// ids lists the Logto ids of a page.
func ids(p hierarchy.Page) []string {
	out := make([]string, len(p.Orgs))
	for i, o := range p.Orgs {
		out[i] = o.LogtoID
	}
	return out
}

// sameSet reports whether a and b hold the same ids in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// principal is a signed-in user of org with the role matching its level.
func principal(org string, role hierarchy.Role) hierarchy.Principal {
	return hierarchy.Principal{OrgID: org, Role: role}
}
