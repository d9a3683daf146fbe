package logto

import (
	"context"
	"testing"
)

// BenchmarkListOrganizations measures a full, reconciled listing of 2,500
// organizations (25 pages, 4 at a time) against the in-process simulator.
func BenchmarkListOrganizations(b *testing.B) {
	s := newSim(b)
	seedBulk(b, s)
	c := newTestClient(b, s, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		orgs, err := c.ListOrganizations(ctx)
		if err != nil || len(orgs) != bulkOrganizations {
			b.Fatalf("%d organizations, %v", len(orgs), err)
		}
	}
}

// BenchmarkGetOrganizationParallel measures single reads through the whole
// pipeline (breaker, semaphore, cached token, decoding) under concurrency.
func BenchmarkGetOrganizationParallel(b *testing.B) {
	s := newSim(b)
	id := oneOrg(b, s)
	c := newTestClient(b, s, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetOrganization(context.Background(), id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
