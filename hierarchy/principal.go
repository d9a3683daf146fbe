package hierarchy

import (
	"iter"
	"slices"
	"strings"
)

// Role is a caller's Logto organization role. It exists so that the route
// gates (which the HTTP layer applies) and the JWT claim `org_role` share one
// vocabulary; the Tree's visibility does not widen or narrow with it, except
// that a signed-in user with no role sees nothing.
type Role uint8

// The organization roles; RoleNone is a user without one (or an unknown name).
const (
	RoleNone Role = iota
	RoleOwner
	RoleDistributor
	RoleReseller
	RoleCustomer
)

// ParseRole reads a role name case-insensitively ("Owner", "owner" …);
// anything else is RoleNone.
func ParseRole(s string) Role {
	for r := RoleOwner; r <= RoleCustomer; r++ {
		if strings.EqualFold(s, r.String()) {
			return r
		}
	}
	return RoleNone
}

// String is the capitalised name the upstream puts in `org_role`
// ("Owner" …), "" for RoleNone.
func (r Role) String() string {
	switch r {
	case RoleOwner:
		return "Owner"
	case RoleDistributor:
		return "Distributor"
	case RoleReseller:
		return "Reseller"
	case RoleCustomer:
		return "Customer"
	}
	return ""
}

// The permission names the read routes are gated on (Logto scopes).
const (
	PermReadCustomers    = "read:customers"
	PermReadResellers    = "read:resellers"
	PermReadDistributors = "read:distributors"
	PermReadUsers        = "read:users"
)

// Principal is who is asking, whatever kind of token it came from. The HTTP
// layer builds one per request; the Tree derives what it may see.
type Principal struct {
	// OrgID is the Logto id of the caller's organization ("" for none).
	OrgID string
	// Role is the caller's organization role (session tokens).
	Role Role
	// Permissions are the caller's scopes (user ∪ organization permissions,
	// or a service token's `scope`).
	Permissions []string
	// Service marks a Logto-issued machine token rather than a user session.
	Service bool
	// TreeWide marks a service token without an organization_id claim: its
	// scopes apply to the whole tree. It is ignored unless Service is set.
	TreeWide bool
}

// Has reports whether p holds the permission perm.
func (p Principal) Has(perm string) bool {
	return slices.Contains(p.Permissions, perm)
}

// Scope is the set of organizations a principal may see, resolved once per
// request: it is a contiguous range of the Tree's positions (or, for an
// organization the Tree does not know, that organization alone). It includes
// soft-deleted organizations, which only status=deleted lists show.
type Scope struct {
	t      *Tree
	lo, hi int32  // positions [lo, hi)
	self   string // the principal's own unknown organization, if any
	// all is set for the principals that see every organization, including
	// those the Tree does not know yet.
	all bool
}

// Scope resolves what p may see: a tree-wide service principal or the Owner
// organization → everything; distributor D → D, its resellers, its customers
// and its non-deleted resellers' customers; reseller R → R and its
// customers; customer C → C; an organization unknown to the Tree → itself
// only; a soft-deleted organization, no organization, or a user with no role
// → nothing.
func (t *Tree) Scope(p Principal) Scope {
	s := Scope{t: t}
	switch {
	case p.Service && p.TreeWide:
		s.hi, s.all = int32(len(t.nodes)), true
	case p.OrgID == "" || (!p.Service && p.Role == RoleNone):
	case p.OrgID == t.ownerID:
		s.hi, s.all = int32(len(t.nodes)), true
	default:
		pos, ok := t.index[p.OrgID]
		switch {
		case !ok:
			s.self = p.OrgID
		case !t.nodes[pos].deleted:
			s.lo, s.hi = pos, t.nodes[pos].end
		}
	}
	return s
}

// Everything reports whether the principal sees every organization (the
// Owner, a tree-wide service), so that callers filtering other data by
// organization (users) can skip the filter. A subtree that happens to hold
// every known organization is not everything.
func (s Scope) Everything() bool { return s.all }

// Contains reports whether the organization is in the scope. For the
// principals that see everything it holds for any id, even one the Tree
// does not know yet (an organization created a moment ago); the caller still
// has to find the organization.
func (s Scope) Contains(logtoID string) bool {
	switch {
	case logtoID == "":
		return false
	case s.all:
		return true
	case s.self != "":
		return logtoID == s.self
	case s.t == nil:
		return false
	}
	pos, ok := s.t.index[logtoID]
	return ok && s.lo <= pos && pos < s.hi
}

// Len is the number of organizations of the Tree in the scope, soft-deleted
// ones included.
func (s Scope) Len() int {
	if s.self != "" {
		return 1
	}
	return int(s.hi - s.lo)
}

// LogtoIDs yields the Logto ids of the scope's organizations, without the
// soft-deleted ones: the set the users routes filter by.
func (s Scope) LogtoIDs() iter.Seq[string] {
	return func(yield func(string) bool) {
		if s.self != "" {
			yield(s.self)
			return
		}
		for pos := s.lo; pos < s.hi; pos++ {
			if !s.t.nodes[pos].deleted && !yield(s.t.at(pos).LogtoID) {
				return
			}
		}
	}
}

// CanSee reports whether p may see the organization (soft-deleted ones
// included, see Find). It allocates nothing and costs two map lookups.
func (t *Tree) CanSee(p Principal, logtoID string) bool {
	return t.Scope(p).Contains(logtoID)
}

// Find returns the organization as a detail route may serve it to p: known,
// visible to p and not soft-deleted. A miss and an invisible organization
// look the same, so that existence never leaks. Callers still check that
// Org.Type matches the route.
func (t *Tree) Find(p Principal, logtoID string) (Org, bool) {
	pos, ok := t.index[logtoID]
	if !ok || t.nodes[pos].deleted || !t.Scope(p).Contains(logtoID) {
		return Org{}, false
	}
	return *t.at(pos), true
}
