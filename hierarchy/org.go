package hierarchy

import (
	"encoding/json"
	"strings"
	"time"
)

// Type is an organization's level in the hierarchy. It exists as a closed
// enumeration so that the level rules (who may be whose parent) are checked
// by the compiler rather than by string comparisons scattered in handlers.
type Type uint8

// The levels, top to bottom. The zero Type never appears in a Tree.
const (
	TypeOwner Type = iota + 1
	TypeDistributor
	TypeReseller
	TypeCustomer
)

// String is the wire spelling of t (customData.type and the `type` field of
// GET /organizations items): "owner", "distributor", "reseller", "customer".
func (t Type) String() string {
	switch t {
	case TypeOwner:
		return "owner"
	case TypeDistributor:
		return "distributor"
	case TypeReseller:
		return "reseller"
	case TypeCustomer:
		return "customer"
	}
	return ""
}

// ParseType reads a customData.type value. It accepts the three listable
// levels only ("owner" is reserved upstream and never written to customData);
// the match is case-insensitive so that hand-edited data still lands on the
// intended level.
func ParseType(s string) (Type, bool) {
	switch {
	case strings.EqualFold(s, "distributor"):
		return TypeDistributor, true
	case strings.EqualFold(s, "reseller"):
		return TypeReseller, true
	case strings.EqualFold(s, "customer"):
		return TypeCustomer, true
	}
	return 0, false
}

// Creator is the creator snapshot stored in customData.createdByUser when an
// organization is created (the upstream's OrgCreator). It is surfaced as the
// `created_by` object and backs the `created_by` filter and the creator_name
// sort. The JSON tags are the snapshot's own keys, which are also its wire
// keys.
type Creator struct {
	UserID           string `json:"user_id"`
	Username         string `json:"username"`
	Name             string `json:"name"`
	Email            string `json:"email"`
	OrganizationID   string `json:"organization_id"`
	OrganizationName string `json:"organization_name"`
	// OnBehalfOf is true when the creator attributed the organization to
	// another parent than its own organization.
	OnBehalfOf bool `json:"on_behalf_of,omitempty"`
}

// Org is one organization with everything the read routes serve about it,
// derived once at Build. Values handed out by a Tree are copies, but
// CustomData, PromotedFrom and *Creator are shared with the Tree and must be
// treated as read-only.
type Org struct {
	// ID is the stable UUIDv5 of LogtoID (OrgUUID), served as `id`.
	ID UUID
	// LogtoID is Logto's organization id, served as `logto_id` and used in
	// every path and filter.
	LogtoID     string
	Name        string
	Description string
	// Type is the level the organization holds in this Tree (after the
	// bad-data rules: an unknown type reads as TypeCustomer).
	Type Type
	// ParentID is customData.createdBy verbatim, "" when absent. It is what
	// the organization_id list filter matches, even for orphans.
	ParentID string
	// CustomData is the wire `custom_data`: the record's customData minus
	// createdByUser (and minus promotedFrom on distributors), precomputed so
	// it can be written as is. `{}` when the record's customData was absent or
	// malformed.
	CustomData json.RawMessage
	// CreatedAt is customData.createdAt, else Logto's createdAt.
	CreatedAt time.Time
	// UpdatedAt is customData.updatedAt, else CreatedAt.
	UpdatedAt time.Time
	// DeletedAt is customData.deletedAt; zero when not soft-deleted.
	DeletedAt time.Time
	// SuspendedAt is the effective suspension time: the organization's own
	// customData.suspendedAt, else that of its nearest directly suspended
	// ancestor; zero when not suspended.
	SuspendedAt time.Time
	// SuspendedByOrgID is the Logto id of the ancestor whose suspension
	// cascades here; "" when directly suspended or not suspended.
	SuspendedByOrgID string
	// RebrandingOrgID is the Logto id of the organization whose rebranding
	// applies (self, parent or grandparent); "" when none does.
	RebrandingOrgID string
	// ResellersCount is set on distributors: their non-deleted resellers.
	ResellersCount int
	// CustomersCount is set on distributors (non-deleted customers of the
	// distributor and of its non-deleted resellers) and resellers (their
	// non-deleted customers).
	CustomersCount int
	// Creator is the creator snapshot; nil when the record has none.
	Creator *Creator
	// PromotedFrom is customData.promotedFrom on distributors (served as
	// `promoted_from`); nil otherwise.
	PromotedFrom json.RawMessage
}

// Deleted reports whether the organization is soft-deleted, which hides it
// from every read except status=deleted lists.
func (o *Org) Deleted() bool { return !o.DeletedAt.IsZero() }

// Suspended reports whether the organization is suspended, directly or by
// cascade from an ancestor.
func (o *Org) Suspended() bool { return !o.SuspendedAt.IsZero() }

// RebrandingEnabled is the wire `rebranding_enabled`: true when some
// organization's rebranding applies to this one.
func (o *Org) RebrandingEnabled() bool { return o.RebrandingOrgID != "" }

// HasSuspendedByKey reports whether the wire object carries the
// `suspended_by_org_id` key at all: distributors never do (upstream shape),
// resellers and customers always do (null unless cascaded).
func (o *Org) HasSuspendedByKey() bool {
	return o.Type == TypeReseller || o.Type == TypeCustomer
}
