// # Reading the records
//
// Build reads each record's customData once. The keys it reads are type,
// createdBy, createdAt, updatedAt, createdByUser, suspendedAt, deletedAt,
// rebrandingEnabled and promotedFrom; every other key is passed through.
// The served `custom_data` is customData minus createdByUser (and minus
// promotedFrom on distributors), with the members' text untouched.
//
// The Owner is the organization named by Options.OwnerID, else the record
// named "Owner" (any case) whose type is absent, null or "". It is never
// listed, is never deleted, suspended or a rebranding source (those keys are
// ignored on it), and sees everything.
//
// # Bad data
//
// Build never fails and never panics. Each repair is counted in
// Stats().Problems under the kind named here:
//
//   - A record without an id is dropped (empty_id).
//   - Several records with one id: one is kept, whatever the input order —
//     the latest updatedAt, then the latest Logto createdAt, then the
//     smallest name, description, customData bytes (duplicate_id).
//   - No Owner found (owner_missing). Several Owner candidates: the smallest
//     id is the Owner, the others are ordinary organizations
//     (duplicate_owner).
//   - customData that is not a JSON object reads as {} (malformed_custom_data);
//     absent or null customData is {} without a problem.
//   - A missing, empty or unknown type on a non-owner organization reads as
//     customer, as the upstream's `sync pull` does (unknown_type). Known
//     types match in any case.
//   - The parent is createdBy, and must be one level up: the Owner for a
//     distributor, a distributor for a reseller, a reseller or a distributor
//     for a customer. An absent createdBy or one naming no organization
//     (parent_missing), or one naming an organization of another level
//     (wrong_level), makes the organization an orphan: a root of its own
//     subtree that no ancestor but the Owner sees. Because every kept link
//     goes up exactly one level, cycles and chains deeper than three levels
//     cannot survive; organizations on a createdBy cycle are also counted
//     (cycle).
//   - Timestamps are RFC 3339. createdAt falls back to Logto's createdAt,
//     updatedAt to createdAt. A present but unreadable suspendedAt or
//     deletedAt still suspends or deletes (failing closed), dated at updatedAt
//     (bad_timestamp). null and "" mean absent.
//   - createdBy that is not a string reads as absent, rebrandingEnabled is
//     only JSON true, createdByUser that is not an object is no snapshot
//     (bad_field); non-string snapshot fields read as "".
//
// # Deletion, suspension, rebranding, counts
//
// An organization's visibility parent is its parent unless that parent is
// soft-deleted: deletion breaks the chain. Every derivation below walks
// visibility parents only.
//
//   - A soft-deleted organization keeps its place (its ancestors still list
//     it under status=deleted), but its descendants are no longer visible to
//     its ancestors, it inherits nothing, passes nothing on, and is counted
//     nowhere.
//   - Suspension: an organization with its own suspendedAt is directly
//     suspended (suspended_by_org_id null). Otherwise it takes the
//     suspendedAt of its nearest directly suspended ancestor, whose id is its
//     suspended_by_org_id. Distributors have no ancestor, hence never a
//     cascade, and carry no suspended_by_org_id key (Org.HasSuspendedByKey).
//     Cascaded organizations count as suspended in status filters and sort
//     by the inherited time, as upstream, whose cascade writes suspended_at
//     on every row it reaches.
//   - Rebranding: the nearest of self, parent, grandparent with
//     rebrandingEnabled; never the Owner, never a soft-deleted one.
//   - resellers_count (distributors): non-deleted resellers.
//     customers_count: for a distributor, non-deleted customers whose parent
//     is the distributor or one of its non-deleted resellers; for a reseller,
//     its non-deleted customers.
//   - id: OrgUUID, the UUIDv5 of the Logto id under OrgNamespace.
//
// # Visibility
//
// Visibility comes from the position of the principal's organization in the
// tree (see Tree.Scope), never from what its token claims: a tree-wide
// service principal or the Owner sees everything (even organizations the
// Tree does not know yet); a distributor itself, its resellers and the
// customers of both; a reseller itself and its customers; a customer
// itself. An organization unknown to the tree sees at most itself; a
// soft-deleted one, or a user without an organization role, sees nothing.
// The role is otherwise for the route gates: it never widens or narrows the
// scope.
//
// # Lists
//
// List and ListOrganizations follow the upstream's semantics (see Query and
// OrgQuery). Search is a plain case-insensitive substring (upstream's LIKE
// wildcards % and _ are literal here). Sorting is by the requested key, NULLs
// last ascending and first descending as in Postgres, then by Logto id in
// the same direction, so pages are stable and partition the result.
package hierarchy
