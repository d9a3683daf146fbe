package hierarchy

import (
	"runtime"
	"sync"
)

// The derivations below walk positions in depth-first order, so a visibility
// parent is always final before its children read it; each is one O(N) pass.

// deriveSuspension applies the cascade rule: an organization not suspended
// directly takes the suspension of its nearest directly suspended ancestor
// along the visibility chain. Soft-deleted organizations inherit nothing.
func (b *builder) deriveSuspension() {
	t := b.t
	for pos := range int32(len(t.nodes)) {
		o := t.at(pos)
		q := b.epPos[pos]
		if o.Suspended() || o.Deleted() || q < 0 || !t.at(q).Suspended() {
			continue
		}
		src := t.at(q)
		o.SuspendedAt = src.SuspendedAt
		o.SuspendedByOrgID = src.SuspendedByOrgID
		if o.SuspendedByOrgID == "" {
			o.SuspendedByOrgID = src.LogtoID // q is the direct source
		}
	}
	for pos := range t.nodes {
		t.nodes[pos].suspended = t.at(int32(pos)).Suspended()
	}
}

// deriveRebranding applies the inheritance rule: the nearest of self, parent
// and grandparent with rebrandingEnabled along the visibility chain (which
// never contains the Owner nor a soft-deleted organization). A soft-deleted
// organization has none.
func (b *builder) deriveRebranding() {
	t := b.t
	for pos := range int32(len(t.nodes)) {
		o := t.at(pos)
		switch {
		case o.Type == TypeOwner || o.Deleted():
		case b.meta[t.nodes[pos].org].rebranding:
			o.RebrandingOrgID = o.LogtoID
		case b.epPos[pos] >= 0:
			o.RebrandingOrgID = t.at(b.epPos[pos]).RebrandingOrgID
		}
	}
}

// deriveCounts computes resellers_count and customers_count over non-deleted
// organizations; a soft-deleted reseller's customers do not count for its
// distributor.
func (b *builder) deriveCounts() {
	t := b.t
	for pos := range int32(len(t.nodes)) {
		o := t.at(pos)
		p := b.parentPos[pos]
		if o.Deleted() || p < 0 {
			continue
		}
		parent := t.at(p)
		switch o.Type {
		case TypeReseller:
			parent.ResellersCount++
		case TypeCustomer:
			parent.CustomersCount++
			if g := b.parentPos[p]; parent.Type == TypeReseller && !parent.Deleted() && g >= 0 {
				t.at(g).CustomersCount++
			}
		}
	}
}

// countStats fills the descriptive half of Stats.
func (b *builder) countStats() {
	s := b.stats
	s.Organizations = len(b.t.nodes)
	for pos := range int32(len(b.t.nodes)) {
		o := b.t.at(pos)
		switch o.Type {
		case TypeDistributor:
			s.Distributors++
		case TypeReseller:
			s.Resellers++
		case TypeCustomer:
			s.Customers++
		}
		switch {
		case o.Deleted():
			s.Deleted++
		case o.Suspended():
			s.Suspended++
		}
	}
}

// buildIndexes builds the lookup structures the queries use: positions by
// type, organizations by raw createdBy, and the sort orders.
func (b *builder) buildIndexes() {
	t := b.t
	for pos := range t.nodes {
		typ := t.nodes[pos].typ
		t.byType[typ] = append(t.byType[typ], int32(pos))
	}
	t.children = make(map[string][]int32)
	for pos := range int32(len(t.nodes)) {
		o := t.at(pos)
		if o.Type != TypeOwner && o.ParentID != "" {
			t.children[o.ParentID] = append(t.children[o.ParentID], pos)
		}
	}
	// The default orders (lists, picker) are built now, the others on first
	// use (see Tree.order).
	eager := []sortKey{sortCreatedAt, sortName, sortType}
	parallel(len(eager), func(i int) { t.order(eager[i]) })
}

// name is the lower-cased name, the name sort key.
func (n *node) name() string { return n.blob[:n.nameEnd] }

// description is the lower-cased description, its sort key.
func (n *node) description() string { return n.blob[n.nameEnd+1 : n.descEnd] }

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, fn func(i int)) {
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range work {
				fn(i)
			}
		})
	}
	wg.Wait()
}
