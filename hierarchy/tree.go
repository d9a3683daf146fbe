package hierarchy

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the inputs to Build that do not come from Logto's records.
type Options struct {
	// OwnerID, when set, names the Owner organization explicitly
	// (OWNER_ORG_ID); otherwise the Owner is the record named "Owner" with no
	// customData.type.
	OwnerID string
}

// Tree is one immutable, fully derived view of the organization hierarchy.
// It is safe for concurrent use by any number of readers because no answer
// it gives ever changes after Build returns (the sort orders it builds on
// first use are built once, under sync.Once); a new Logto state means a new
// Tree.
//
// Organizations have a position in the depth-first order of the visibility
// forest, so that every organization's visible subtree is one contiguous
// range of positions [pos, end): visibility is two integer comparisons, and
// a list is a walk over a range of a per-type position list.
type Tree struct {
	// orgs is the storage, in the order of the records given to Build
	// (dropped records leave an empty slot); nodes[pos].org indexes it.
	orgs  []Org
	nodes []node // by position
	index map[string]int32

	// ownerID is the Owner's Logto id, known even when its record is absent
	// (Options.OwnerID); "" when there is no Owner at all.
	ownerID string

	// byType lists the positions of each type, ascending.
	byType [TypeCustomer + 1][]int32
	// sorts are the orders of the sort keys, each built once (see order).
	sorts    [numSortKeys]sortIndex
	sortOnce [numSortKeys]sync.Once
	// idRank is each position's rank by Logto id, the sorts' tie-break.
	idRank []int32
	// children maps a raw createdBy value to the positions of the
	// organizations naming it (the organization_id filter).
	children map[string][]int32

	stats Stats

	// bits recycles the per-query rank bitsets (see collect).
	bits sync.Pool
}

// node is the per-position data the hot paths read, kept apart from Org so
// that scans touch little memory.
type node struct {
	blob    string // see recMeta.blob
	nameEnd int32
	descEnd int32
	end     int32 // end of the visible subtree, exclusive
	org     int32 // index into Tree.orgs
	typ     Type
	deleted bool
	// suspended is the effective suspension (direct or cascade).
	suspended bool
	// creatorNull is true when the creator name is NULL (see recMeta).
	creatorNull bool
}

// Build derives a Tree from Logto's organization records. It never fails and
// never panics: bad data is handled by the documented rules and reported in
// Stats().Problems. The result does not depend on the order of records.
// Build does not retain records or their CustomData.
func Build(records []Record, opts Options) *Tree {
	t := &Tree{}
	b := builder{t: t, records: records, stats: &t.stats}
	b.parseAll()
	b.dedupe()
	b.findOwner(opts)
	b.assignTypes()
	b.resolveParents()
	b.countCycles()
	b.layout()
	b.fill()
	b.deriveSuspension()
	b.deriveRebranding()
	b.deriveCounts()
	b.countStats()
	b.buildIndexes()
	return t
}

// Len is the number of distinct organizations in the Tree, Owner included.
func (t *Tree) Len() int { return len(t.nodes) }

// Stats describes the Tree and the bad data Build repaired.
func (t *Tree) Stats() Stats { return t.stats }

// OwnerID is the Owner organization's Logto id ("" when there is none).
func (t *Tree) OwnerID() string { return t.ownerID }

// Org returns the organization with the given Logto id, unscoped: adapters use
// it to resolve ids they already trust (a user's home organization, a webhook
// subject). The Owner is returned with TypeOwner. Read routes must use Find.
func (t *Tree) Org(logtoID string) (Org, bool) {
	pos, ok := t.index[logtoID]
	if !ok {
		return Org{}, false
	}
	return *t.at(pos), true
}

// at is the organization at a position.
func (t *Tree) at(pos int32) *Org { return &t.orgs[t.nodes[pos].org] }

// builder carries the intermediate state of Build. "Kept index" k is an
// organization's rank by Logto id among the kept records; "position" is its
// place in the Tree.
type builder struct {
	t       *Tree
	records []Record
	meta    []recMeta // by record
	stats   *Stats

	kept     []int32          // kept index → record index, sorted by Logto id
	index    map[string]int32 // Logto id → kept index, later → position
	ownerIdx int32            // kept index of the Owner, -1 when absent

	rawParent []int32 // kept index of the record createdBy names, -1
	parent    []int32 // level-valid parent (kept index), -1 for roots and orphans

	order     []int32 // position → kept index
	pos       []int32 // kept index → position
	parentPos []int32 // position → parent position, -1
	epPos     []int32 // position → visibility parent position, -1
}

// parseAll parses every record straight into the Tree's storage, spreading
// the work over the available CPUs: reading customData is most of Build's
// cost, and records are independent.
func (b *builder) parseAll() {
	n := len(b.records)
	b.t.orgs = make([]Org, n)
	b.meta = make([]recMeta, n)
	const chunk = 512
	workers := runtime.GOMAXPROCS(0)
	if n < 4*chunk {
		workers = 1
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var sc scratch
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= n {
					return
				}
				for i := start; i < min(start+chunk, n); i++ {
					parseRecord(&b.records[i], &b.t.orgs[i], &b.meta[i], &sc)
				}
			}
		})
	}
	wg.Wait()
}

// dedupe drops records without an id and keeps one record per id, in Logto
// id order. The winner does not depend on input order: the latest
// updatedAt, then the latest Logto createdAt, then the smallest (name,
// description, customData) wins.
func (b *builder) dedupe() {
	entries := make([]sortEntry, 0, len(b.records))
	for i := range b.records {
		id := b.records[i].ID
		if id == "" {
			b.stats.Problems.EmptyID++
			b.t.orgs[i] = Org{}
			continue
		}
		entries = append(entries, sortEntry{a: prefix8(id), s: id, pos: int32(i)})
	}
	slices.SortFunc(entries, compareEntries)

	b.kept = make([]int32, 0, len(entries))
	b.index = make(map[string]int32, len(entries))
	for i := 0; i < len(entries); {
		j, best := i+1, entries[i].pos
		for ; j < len(entries) && entries[j].s == entries[i].s; j++ {
			loser := entries[j].pos
			if b.prefer(loser, best) {
				best, loser = loser, best
			}
			b.t.orgs[loser] = Org{} // release what the dropped record holds
			b.stats.Problems.DuplicateID++
		}
		b.index[entries[i].s] = int32(len(b.kept))
		b.kept = append(b.kept, best)
		i = j
	}
	for _, r := range b.kept {
		m := &b.meta[r]
		b.stats.Problems.MalformedCustomData += int(m.malformed)
		b.stats.Problems.BadTimestamp += int(m.badTimestamp)
		b.stats.Problems.BadField += int(m.badField)
	}
}

// prefer reports whether record x should be kept over record y (same id).
func (b *builder) prefer(x, y int32) bool {
	ox, oy := &b.t.orgs[x], &b.t.orgs[y]
	rx, ry := &b.records[x], &b.records[y]
	if c := ox.UpdatedAt.Compare(oy.UpdatedAt); c != 0 {
		return c > 0
	}
	if c := rx.CreatedAt.Compare(ry.CreatedAt); c != 0 {
		return c > 0
	}
	if c := strings.Compare(rx.Name, ry.Name); c != 0 {
		return c < 0
	}
	if c := strings.Compare(rx.Description, ry.Description); c != 0 {
		return c < 0
	}
	return bytes.Compare(rx.CustomData, ry.CustomData) < 0
}

// org is the organization with kept index k.
func (b *builder) org(k int32) *Org { return &b.t.orgs[b.kept[k]] }

// findOwner applies the Owner rule: Options.OwnerID, else the record named
// "Owner" (any case) with no type, the smallest id winning.
func (b *builder) findOwner(opts Options) {
	b.ownerIdx = -1
	if opts.OwnerID != "" {
		b.t.ownerID = opts.OwnerID
		if k, ok := b.index[opts.OwnerID]; ok {
			b.ownerIdx = k
		}
	} else {
		for k, r := range b.kept {
			if !b.meta[r].typeAbsent || !strings.EqualFold(b.records[r].Name, "Owner") {
				continue
			}
			if b.ownerIdx >= 0 {
				b.stats.Problems.DuplicateOwner++
				continue
			}
			b.ownerIdx = int32(k)
			b.t.ownerID = b.records[r].ID
		}
	}
	if b.ownerIdx < 0 {
		b.stats.Problems.OwnerMissing = 1
	}
}

// assignTypes applies the type rule: a missing or unknown type is a customer.
// The Owner is never deleted, suspended or a rebranding source.
func (b *builder) assignTypes() {
	for k, r := range b.kept {
		o, m := &b.t.orgs[r], &b.meta[r]
		switch {
		case int32(k) == b.ownerIdx:
			o.Type = TypeOwner
			o.DeletedAt, o.SuspendedAt, m.rebranding = time.Time{}, time.Time{}, false
		case m.typ == 0:
			b.stats.Problems.UnknownType++
			o.Type = TypeCustomer
		default:
			o.Type = m.typ
		}
	}
}

// canParent is the level rule: which levels may be whose parent.
func canParent(parent, child Type) bool {
	switch child {
	case TypeReseller:
		return parent == TypeDistributor
	case TypeCustomer:
		return parent == TypeDistributor || parent == TypeReseller
	}
	return false
}

// resolveParents applies the parent rules and counts orphans.
func (b *builder) resolveParents() {
	n := len(b.kept)
	b.rawParent = make([]int32, n)
	b.parent = make([]int32, n)
	for k := range int32(n) {
		b.rawParent[k], b.parent[k] = -1, -1
		if k == b.ownerIdx {
			continue
		}
		o := b.org(k)
		cb := o.ParentID
		j, found := b.index[cb]
		if found {
			b.rawParent[k] = j
		}
		switch {
		case o.Type == TypeDistributor && cb != "" && cb == b.t.ownerID:
			continue // a distributor under the Owner: a proper root
		case cb == "" || (!found && cb != b.t.ownerID):
			b.stats.Problems.ParentMissing++
		case !found || !canParent(b.org(j).Type, o.Type):
			// The Owner, or an organization of the wrong level.
			b.stats.Problems.WrongLevel++
		default:
			b.parent[k] = j
			continue
		}
		b.stats.Orphans++
	}
}

// countCycles counts the organizations lying on a cycle of raw createdBy
// links. Such links never survive resolveParents (a cycle always has a link
// that does not go up a level); this only makes the report precise.
func (b *builder) countCycles() {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, len(b.kept))
	var path []int32
	for start := range int32(len(b.kept)) {
		path = path[:0]
		k := start
		for k >= 0 && state[k] == unseen {
			state[k] = onPath
			path = append(path, k)
			k = b.rawParent[k]
		}
		if k >= 0 && state[k] == onPath {
			// k closes a cycle: count from its first occurrence on the path.
			b.stats.Problems.Cycle += len(path) - slices.Index(path, k)
		}
		for _, j := range path {
			state[j] = done
		}
	}
}

// layout assigns positions: the Owner first, then the visibility forest in
// depth-first order, roots and siblings by Logto id. The visibility parent
// of an organization is its parent unless that parent is soft-deleted (the
// chain is broken there).
func (b *builder) layout() {
	n := int32(len(b.kept))
	ep := make([]int32, n)
	first := make([]int32, n+1) // CSR offsets of children by visibility parent
	for k := range n {
		ep[k] = -1
		if p := b.parent[k]; p >= 0 && !b.org(p).Deleted() {
			ep[k] = p
			first[p+1]++
		}
	}
	for k := range n {
		first[k+1] += first[k]
	}
	kids := make([]int32, first[n])
	fill := slices.Clone(first[:n])
	for k := range n {
		if p := ep[k]; p >= 0 {
			kids[fill[p]] = k
			fill[p]++
		}
	}

	b.order = make([]int32, 0, n)
	var stack []int32
	visit := func(root int32) {
		stack = append(stack[:0], root)
		for len(stack) > 0 {
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			b.order = append(b.order, k)
			c := kids[first[k]:first[k+1]]
			for i := len(c) - 1; i >= 0; i-- {
				stack = append(stack, c[i])
			}
		}
	}
	if b.ownerIdx >= 0 {
		visit(b.ownerIdx)
	}
	for k := range n {
		if ep[k] < 0 && k != b.ownerIdx {
			visit(k)
		}
	}

	b.pos = make([]int32, n)
	for p, k := range b.order {
		b.pos[k] = int32(p)
	}
	b.parentPos = make([]int32, n)
	b.epPos = make([]int32, n)
	for p, k := range b.order {
		b.parentPos[p], b.epPos[p] = -1, -1
		if q := b.parent[k]; q >= 0 {
			b.parentPos[p] = b.pos[q]
		}
		if q := ep[k]; q >= 0 {
			b.epPos[p] = b.pos[q]
		}
	}
}

// fill builds the Tree's nodes at their positions, subtree ends, and the id
// index (reusing the builder's map).
func (b *builder) fill() {
	t := b.t
	n := len(b.order)
	t.nodes = make([]node, n)
	for pos, k := range b.order {
		r := b.kept[k]
		o, m := &t.orgs[r], &b.meta[r]
		t.nodes[pos] = node{
			blob:        m.blob,
			nameEnd:     m.nameEnd,
			descEnd:     m.descEnd,
			end:         int32(pos) + 1,
			org:         r,
			typ:         o.Type,
			deleted:     o.Deleted(),
			creatorNull: m.creatorNameNull,
		}
	}
	t.idRank = b.order // kept index order is Logto id order
	// Children follow their visibility parent in depth-first order, so
	// walking backwards extends each parent's end over its subtree.
	for pos := n - 1; pos >= 0; pos-- {
		if q := b.epPos[pos]; q >= 0 {
			t.nodes[q].end = max(t.nodes[q].end, t.nodes[pos].end)
		}
	}
	if b.ownerIdx >= 0 {
		t.nodes[b.pos[b.ownerIdx]].end = int32(n) // the Owner sees everything
	}
	for id, k := range b.index {
		b.index[id] = b.pos[k]
	}
	t.index = b.index
}
