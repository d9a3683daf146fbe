package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
)

// Record converts one Logto organization into the domain's input. It lives in
// the HTTP adapter because both the full listing (through OrganizationSource)
// and webhook payloads (which carry the same organization object) need it.
func Record(o logto.Organization) hierarchy.Record {
	r := hierarchy.Record{ID: o.ID, Name: o.Name, CreatedAt: time.UnixMilli(o.CreatedAt).UTC()}
	if o.Description != nil {
		r.Description = *o.Description
	}
	if len(o.CustomData) > 0 && string(o.CustomData) != "null" {
		r.CustomData = o.CustomData
	}
	return r
}

// OrganizationSource is the hierarchy view's source: one complete, reconciled
// listing of Logto's organizations, converted to records. A listing that does
// not reconcile fails as a whole (the client never returns half a tree), so
// the view keeps serving its previous snapshot.
func OrganizationSource(c *logto.Client) func(ctx context.Context) ([]hierarchy.Record, error) {
	return func(ctx context.Context) ([]hierarchy.Record, error) {
		orgs, err := c.ListOrganizations(ctx)
		if err != nil {
			return nil, fmt.Errorf("list organizations: %w", err)
		}
		records := make([]hierarchy.Record, 0, len(orgs))
		for _, o := range orgs {
			records = append(records, Record(o))
		}
		return records, nil
	}
}
