package hierarchy

import (
	"iter"
	"log/slog"
)

// Problems counts the bad data Build met and worked around, by rule (see the
// package documentation). Build never fails; Problems is how the caller finds
// out, to log once per rebuild and to export as a metric labelled by kind.
type Problems struct {
	// EmptyID counts records without an id (dropped).
	EmptyID int
	// DuplicateID counts records dropped because another record with the
	// same id was kept.
	DuplicateID int
	// OwnerMissing is 1 when the Owner organization is not among the records.
	OwnerMissing int
	// DuplicateOwner counts extra Owner candidates (named "Owner", no type)
	// beyond the one kept as the Owner.
	DuplicateOwner int
	// MalformedCustomData counts customData that is not a JSON object (read
	// as {}).
	MalformedCustomData int
	// UnknownType counts non-owner organizations with a missing or unknown
	// type (read as customers).
	UnknownType int
	// ParentMissing counts organizations whose createdBy is absent or names
	// no known organization (orphans).
	ParentMissing int
	// WrongLevel counts organizations whose createdBy names an organization
	// of a level that cannot be their parent (orphans). Cycles and chains
	// deeper than three levels always contain such a link.
	WrongLevel int
	// Cycle counts organizations lying on a createdBy cycle (each is also
	// counted under WrongLevel or ParentMissing).
	Cycle int
	// BadTimestamp counts timestamps that are present but not RFC 3339.
	BadTimestamp int
	// BadField counts known keys holding a value of the wrong JSON type
	// (createdBy, createdByUser, rebrandingEnabled).
	BadField int
}

// All yields each kind with its count, in a fixed order, under stable
// snake_case names suitable as metric label values.
func (p Problems) All() iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		kinds := [...]struct {
			name string
			n    int
		}{
			{"empty_id", p.EmptyID},
			{"duplicate_id", p.DuplicateID},
			{"owner_missing", p.OwnerMissing},
			{"duplicate_owner", p.DuplicateOwner},
			{"malformed_custom_data", p.MalformedCustomData},
			{"unknown_type", p.UnknownType},
			{"parent_missing", p.ParentMissing},
			{"wrong_level", p.WrongLevel},
			{"cycle", p.Cycle},
			{"bad_timestamp", p.BadTimestamp},
			{"bad_field", p.BadField},
		}
		for _, k := range kinds {
			if !yield(k.name, k.n) {
				return
			}
		}
	}
}

// Total is the sum of all counts: zero means the data was clean.
func (p Problems) Total() int {
	total := 0
	for _, n := range p.All() {
		total += n
	}
	return total
}

// LogValue lets a rebuild log Problems as one slog group of its non-zero
// counts.
func (p Problems) LogValue() slog.Value {
	var attrs []slog.Attr
	for name, n := range p.All() {
		if n != 0 {
			attrs = append(attrs, slog.Int(name, n))
		}
	}
	return slog.GroupValue(attrs...)
}

// Stats describes a built Tree: what it holds and what it had to repair.
// The cache exports it as gauges after each rebuild.
type Stats struct {
	// Organizations is the number of distinct organizations, Owner included.
	Organizations int
	Distributors  int
	Resellers     int
	Customers     int
	// Deleted counts soft-deleted organizations.
	Deleted int
	// Suspended counts non-deleted organizations suspended directly or by
	// cascade.
	Suspended int
	// Orphans counts organizations with no valid parent (see ParentMissing
	// and WrongLevel), visible to the Owner only.
	Orphans  int
	Problems Problems
}
