package logto

import (
	"context"
	"fmt"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

func TestListRolesReadsEveryPage(t *testing.T) {
	s := newSim(t)
	const n = 130 // more than one page of 100
	want := map[string]logtotest.Role{}
	for i := range n {
		spec := logtotest.RoleSpec{Name: fmt.Sprintf("role %03d", i), Description: fmt.Sprintf("description %d", i)}
		if i%10 == 0 {
			spec.Type = logtotest.RoleTypeMachineToMachine
		}
		r := must(s.CreateRole(spec))
		want[r.ID] = r
	}
	c := newTestClient(t, s, nil)

	roles, err := c.ListRoles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range roles {
		if seen[r.ID] {
			t.Fatalf("role %s listed twice", r.ID)
		}
		seen[r.ID] = true
		w, ok := want[r.ID]
		if !ok {
			continue // a role the simulator seeds by itself
		}
		if r.Name != w.Name || r.Description != w.Description || r.Type != w.Type || r.TenantID != "default" {
			t.Errorf("role %s = %+v, want %+v", r.ID, r, w)
		}
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("role %s (%s) missing from the listing", id, want[id].Name)
		}
	}
}
