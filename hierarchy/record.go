// Package hierarchy is the domain of logto-proxy: organizations, the
// owner → distributor → reseller → customer tree, principals, and the
// visibility, rebranding, suspension and list-query rules derived from it.
//
// It is pure: no I/O, no clock reads, no logging. Adapters (the Logto client,
// the Redis cache, the HTTP layer) convert their data into Records, hand them
// to Build, and ask the resulting immutable Tree their questions.
package hierarchy

import (
	"encoding/json"
	"time"
)

// Record is one organization exactly as Logto holds it, reduced to the fields
// the hierarchy is derived from. It is the seam between the adapters and the
// domain: the Logto client produces Records, the cache stores Records in its
// snapshots (the derived Tree is always rebuilt from them, never serialized),
// and Build consumes them. Keeping the snapshot at this level means a change in
// a derivation rule never needs a cache migration.
type Record struct {
	// ID is the Logto organization id (12 characters of [0-9a-z] in a real
	// Logto, but any non-empty string is accepted).
	ID string `json:"id"`
	// Name is the organization's Logto name; the Owner organization is the one
	// named "Owner" with no customData.type.
	Name string `json:"name"`
	// Description is Logto's description, "" when Logto has null.
	Description string `json:"description,omitempty"`
	// CustomData is Logto's customData object verbatim. The keys the domain
	// reads (type, createdBy, createdByUser, suspendedAt, deletedAt,
	// rebrandingEnabled, createdAt, updatedAt) are documented in the README;
	// every other key is passed through untouched.
	CustomData json.RawMessage `json:"customData,omitempty"`
	// CreatedAt is Logto's createdAt (epoch milliseconds on the wire).
	CreatedAt time.Time `json:"createdAt"`
}
