package hierarchy_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/hierarchy/hierarchytest"
)

// This file checks the Tree against a naive reference model written from the
// documented rules: it parses customData with encoding/json, walks createdBy
// chains one link at a time, and answers lists by filtering and sorting
// every organization. Random messy trees and random principals and queries
// must give exactly the same answers.

// refOrg is one organization as the reference model reads it.
type refOrg struct {
	id, name, desc string
	typ            hierarchy.Type
	typeAbsent     bool
	createdBy      string
	createdAt      time.Time
	updatedAt      time.Time
	deleted        bool
	suspended      bool // directly
	suspendedAt    time.Time
	rebranding     bool
	creator        map[string]json.RawMessage // nil when no snapshot
	fields         map[string]json.RawMessage
	record         hierarchy.Record
}

// refTree is the reference model of one Build.
type refTree struct {
	orgs    map[string]*refOrg
	ownerID string
}

func newRef(records []hierarchy.Record, opts hierarchy.Options) *refTree {
	byID := map[string][]*refOrg{}
	for _, r := range records {
		if r.ID != "" {
			byID[r.ID] = append(byID[r.ID], readRef(r))
		}
	}
	ref := &refTree{orgs: map[string]*refOrg{}}
	for id, candidates := range byID {
		slices.SortFunc(candidates, func(a, b *refOrg) int {
			if c := b.updatedAt.Compare(a.updatedAt); c != 0 {
				return c
			}
			if c := b.record.CreatedAt.Compare(a.record.CreatedAt); c != 0 {
				return c
			}
			if c := cmp.Compare(a.name, b.name); c != 0 {
				return c
			}
			if c := cmp.Compare(a.desc, b.desc); c != 0 {
				return c
			}
			return bytes.Compare(a.record.CustomData, b.record.CustomData)
		})
		ref.orgs[id] = candidates[0]
	}
	ref.ownerID = opts.OwnerID
	if ref.ownerID == "" {
		for id, o := range ref.orgs {
			if o.typeAbsent && strings.EqualFold(o.name, "Owner") && (ref.ownerID == "" || id < ref.ownerID) {
				ref.ownerID = id
			}
		}
	}
	for id, o := range ref.orgs {
		switch {
		case id == ref.ownerID:
			o.typ = hierarchy.TypeOwner
			o.deleted, o.suspended, o.rebranding = false, false, false
		case o.typ == 0:
			o.typ = hierarchy.TypeCustomer
		}
	}
	return ref
}

// readRef reads a record the slow, obvious way.
func readRef(r hierarchy.Record) *refOrg {
	o := &refOrg{id: r.ID, name: r.Name, desc: r.Description, record: r}
	if json.Unmarshal(r.CustomData, &o.fields) != nil {
		o.fields = nil
	}
	str := func(key string) (string, bool) {
		var s string
		raw, ok := o.fields[key]
		if !ok || json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	set := func(key string) bool {
		raw, ok := o.fields[key]
		return ok && string(raw) != "null" && string(raw) != `""`
	}
	when := func(key string) (time.Time, bool) {
		s, ok := str(key)
		if !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UTC(), err == nil
	}
	switch s, ok := str("type"); {
	case !set("type") || (ok && s == ""):
		o.typeAbsent = true
	case ok:
		o.typ, _ = hierarchy.ParseType(s)
	}
	o.createdBy, _ = str("createdBy")
	var ok bool
	if o.createdAt, ok = when("createdAt"); !ok {
		o.createdAt = r.CreatedAt.UTC()
	}
	if o.updatedAt, ok = when("updatedAt"); !ok {
		o.updatedAt = o.createdAt
	}
	mark := func(key string) (bool, time.Time) {
		if !set(key) {
			return false, time.Time{}
		}
		t, ok := when(key)
		if !ok || t.IsZero() {
			t = o.updatedAt
		}
		if t.IsZero() {
			t = time.Unix(0, 0).UTC()
		}
		return true, t
	}
	o.deleted, _ = mark("deletedAt")
	o.suspended, o.suspendedAt = mark("suspendedAt")
	o.rebranding = string(o.fields["rebrandingEnabled"]) == "true"
	if json.Unmarshal(o.fields["createdByUser"], &o.creator) != nil {
		o.creator = nil
	}
	return o
}

// creatorField is a snapshot field as text, ok false when absent or not a
// string.
func (o *refOrg) creatorField(key string) (string, bool) {
	var s string
	raw, ok := o.creator[key]
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// parent is the level-valid parent, nil for roots and orphans.
func (ref *refTree) parent(o *refOrg) *refOrg {
	p := ref.orgs[o.createdBy]
	if p == nil || o.typ == hierarchy.TypeOwner {
		return nil
	}
	switch {
	case o.typ == hierarchy.TypeReseller && p.typ == hierarchy.TypeDistributor,
		o.typ == hierarchy.TypeCustomer && (p.typ == hierarchy.TypeDistributor || p.typ == hierarchy.TypeReseller):
		return p
	}
	return nil
}

// visParent is the parent unless it is soft-deleted.
func (ref *refTree) visParent(o *refOrg) *refOrg {
	if p := ref.parent(o); p != nil && !p.deleted {
		return p
	}
	return nil
}

func (ref *refTree) canSee(p hierarchy.Principal, id string) bool {
	_, known := ref.orgs[id]
	switch {
	case id == "":
		return false
	case p.Service && p.TreeWide:
		return true
	case p.OrgID == "" || (!p.Service && p.Role == hierarchy.RoleNone):
		return false
	case p.OrgID == ref.ownerID:
		return true
	}
	anchor := ref.orgs[p.OrgID]
	if anchor == nil {
		return id == p.OrgID
	}
	if anchor.deleted || !known {
		return false
	}
	for o := ref.orgs[id]; o != nil; o = ref.visParent(o) {
		if o == anchor {
			return true
		}
	}
	return false
}

func (ref *refTree) suspension(o *refOrg) (time.Time, string) {
	if o.suspended {
		return o.suspendedAt, ""
	}
	if o.deleted {
		return time.Time{}, ""
	}
	for a := ref.visParent(o); a != nil; a = ref.visParent(a) {
		if a.suspended {
			return a.suspendedAt, a.id
		}
	}
	return time.Time{}, ""
}

func (ref *refTree) rebranding(o *refOrg) string {
	if o.deleted || o.typ == hierarchy.TypeOwner {
		return ""
	}
	for a := o; a != nil; a = ref.visParent(a) {
		if a.rebranding {
			return a.id
		}
	}
	return ""
}

func (ref *refTree) counts(o *refOrg) (resellers, customers int) {
	for _, x := range ref.orgs {
		p := ref.parent(x)
		if x.deleted || p == nil {
			continue
		}
		switch {
		case x.typ == hierarchy.TypeReseller && p == o:
			resellers++
		case x.typ == hierarchy.TypeCustomer && p == o:
			customers++
		case x.typ == hierarchy.TypeCustomer && p.typ == hierarchy.TypeReseller && !p.deleted && ref.parent(p) == o:
			customers++
		}
	}
	return resellers, customers
}

// matchesSearch is the upstream's search over name, description and every
// customData value but createdBy and createdByUser.
func (o *refOrg) matchesSearch(term string, withCustomData bool) bool {
	if term == "" {
		return true
	}
	term = strings.ToLower(term)
	if strings.Contains(term, "\x00") {
		return false
	}
	texts := []string{o.name, o.desc}
	if withCustomData {
		for k, raw := range o.fields {
			var s string
			switch {
			case k == "createdBy" || k == "createdByUser" || string(raw) == "null":
			case json.Unmarshal(raw, &s) == nil:
				texts = append(texts, s)
			default:
				texts = append(texts, string(raw))
			}
		}
	}
	for _, text := range texts {
		if strings.Contains(strings.ToLower(text), term) {
			return true
		}
	}
	return false
}

func (ref *refTree) state(o *refOrg) string {
	at, _ := ref.suspension(o)
	switch {
	case o.deleted:
		return "deleted"
	case !at.IsZero():
		return "suspended"
	}
	return "enabled"
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == ""
}

func (ref *refTree) list(p hierarchy.Principal, typ hierarchy.Type, q hierarchy.Query) (page []string, total int) {
	states := map[string]bool{}
	for _, s := range q.Status {
		if s := strings.ToLower(s); s == "enabled" || s == "suspended" || s == "deleted" {
			states[s] = true
		}
	}
	if len(states) == 0 {
		states = map[string]bool{"enabled": true, "suspended": true}
	}
	var createdBy, parents []string
	for _, v := range q.CreatedBy {
		if validID(v) {
			createdBy = append(createdBy, v)
		}
	}
	for _, v := range q.OrganizationIDs {
		if validID(v) {
			parents = append(parents, v)
		}
	}
	if q.IncludeHierarchy && len(parents) > 0 {
		expanded := slices.Clone(parents)
		for _, id := range parents {
			group := []string{id}
			for _, r := range ref.orgs {
				if r.typ == hierarchy.TypeReseller && !r.deleted && r.createdBy == id {
					expanded = append(expanded, r.id)
					group = append(group, r.id)
				}
			}
			for _, c := range ref.orgs {
				if c.typ == hierarchy.TypeCustomer && slices.Contains(group, c.createdBy) {
					expanded = append(expanded, c.id)
				}
			}
		}
		parents = expanded
	}
	var out []*refOrg
	for _, o := range ref.orgs {
		if o.typ != typ || !ref.canSee(p, o.id) || !states[ref.state(o)] || !o.matchesSearch(q.Search, true) {
			continue
		}
		if len(createdBy) > 0 {
			u, _ := o.creatorField("user_id")
			org, _ := o.creatorField("organization_id")
			if o.creator == nil || !(slices.Contains(createdBy, u) || slices.Contains(createdBy, org)) {
				continue
			}
		}
		if len(parents) > 0 && typ != hierarchy.TypeDistributor && !slices.Contains(parents, o.createdBy) {
			continue
		}
		out = append(out, o)
	}
	keys := map[string]bool{"name": true, "description": true, "created_at": true, "updated_at": true, "suspended_at": true, "creator_name": true}
	key, desc := "created_at", true
	if keys[q.SortBy] {
		key, desc = q.SortBy, strings.EqualFold(q.SortDirection, "desc")
	}
	return ref.page(out, key, desc, q.Page, q.PageSize)
}

func (ref *refTree) listOrganizations(p hierarchy.Principal, q hierarchy.OrgQuery) ([]string, int) {
	var out []*refOrg
	for _, o := range ref.orgs {
		switch {
		case o.typ == hierarchy.TypeOwner, o.deleted, !ref.canSee(p, o.id),
			q.Type != "" && o.typ.String() != q.Type,
			q.Name != "" && o.name != q.Name,
			q.Description != "" && o.desc != q.Description,
			!o.matchesSearch(q.Search, false):
			continue
		}
		out = append(out, o)
	}
	key, desc := "name", false
	if q.SortBy == "name" || q.SortBy == "description" || q.SortBy == "type" {
		key, desc = q.SortBy, strings.EqualFold(q.SortDirection, "desc")
	}
	return ref.page(out, key, desc, q.Page, q.PageSize)
}

// page sorts (NULLs last, then Logto id; all reversed for desc) and pages.
func (ref *refTree) page(out []*refOrg, key string, desc bool, page, size int) ([]string, int) {
	nullsLast := func(aNull, bNull bool, c func() int) int {
		switch {
		case aNull && bNull:
			return 0
		case aNull:
			return 1
		case bNull:
			return -1
		}
		return c()
	}
	compare := func(a, b *refOrg) int {
		c := 0
		switch key {
		case "name":
			c = strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name))
		case "description":
			c = strings.Compare(strings.ToLower(a.desc), strings.ToLower(b.desc))
		case "type":
			c = strings.Compare(a.typ.String(), b.typ.String())
		case "created_at":
			c = cmp.Compare(a.createdAt.UnixMicro(), b.createdAt.UnixMicro())
		case "updated_at":
			c = cmp.Compare(a.updatedAt.UnixMicro(), b.updatedAt.UnixMicro())
		case "suspended_at":
			sa, _ := ref.suspension(a)
			sb, _ := ref.suspension(b)
			c = nullsLast(sa.IsZero(), sb.IsZero(), func() int { return cmp.Compare(sa.UnixMicro(), sb.UnixMicro()) })
		case "creator_name":
			na, aok := a.creatorField("name")
			nb, bok := b.creatorField("name")
			c = nullsLast(!aok, !bok, func() int { return strings.Compare(strings.ToLower(na), strings.ToLower(nb)) })
		}
		if c == 0 {
			c = strings.Compare(a.id, b.id)
		}
		if desc {
			c = -c
		}
		return c
	}
	slices.SortFunc(out, compare)
	if page < 1 {
		page = 1
	}
	if size < 1 || size > 100 {
		size = 20
	}
	var ids []string
	for i, o := range out {
		if i/size == page-1 {
			ids = append(ids, o.id)
		}
	}
	return ids, len(out)
}

// randomPrincipal picks callers of every kind, weighted toward those who
// see a lot, and including unknown and soft-deleted organizations, users
// without a role and service tokens.
func randomPrincipal(rng *rand.Rand, ref *refTree, byType map[hierarchy.Type][]string) hierarchy.Principal {
	pick := func(typ hierarchy.Type) string {
		list := byType[typ]
		if len(list) == 0 {
			return "unknown-org"
		}
		return list[rng.IntN(len(list))]
	}
	roles := map[hierarchy.Type]hierarchy.Role{
		hierarchy.TypeOwner: hierarchy.RoleOwner, hierarchy.TypeDistributor: hierarchy.RoleDistributor,
		hierarchy.TypeReseller: hierarchy.RoleReseller, hierarchy.TypeCustomer: hierarchy.RoleCustomer,
	}
	var p hierarchy.Principal
	switch n := rng.IntN(20); {
	case n < 5:
		p.OrgID = ref.ownerID
	case n < 10:
		p.OrgID = pick(hierarchy.TypeDistributor)
	case n < 14:
		p.OrgID = pick(hierarchy.TypeReseller)
	case n < 16:
		p.OrgID = pick(hierarchy.TypeCustomer)
	case n == 16:
		p.OrgID = "unknown-org"
	case n == 17:
		p.Service, p.TreeWide = true, rng.IntN(2) == 0
		p.OrgID = pick(hierarchy.Type(1 + rng.IntN(4)))
	case n == 18:
		p.OrgID = ""
	default:
		p.OrgID = pick(hierarchy.Type(1 + rng.IntN(4)))
		p.Role = hierarchy.Role(rng.IntN(5)) // any role, none included
		return p
	}
	if o := ref.orgs[p.OrgID]; o != nil {
		p.Role = roles[o.typ]
	} else {
		p.Role = hierarchy.RoleDistributor
	}
	return p
}

// randomTerm picks a search term that often matches something: a piece of
// a name, a description or a customData value, in a random case.
func randomTerm(rng *rand.Rand, recs []hierarchy.Record) string {
	r := recs[rng.IntN(len(recs))]
	var source string
	switch rng.IntN(6) {
	case 0:
		return ""
	case 1, 2:
		var fields map[string]any
		_ = json.Unmarshal(r.CustomData, &fields)
		for _, v := range fields {
			source = fmt.Sprint(v) // map order makes the pick random
			break
		}
	case 3:
		source = r.Description
	default:
		source = r.Name
	}
	if len(source) < 2 {
		return source
	}
	i := rng.IntN(len(source) - 1)
	j := min(len(source), i+2+rng.IntN(5))
	term := source[i:j]
	if rng.IntN(2) == 0 {
		term = strings.ToUpper(term)
	}
	return term
}

// randomQuery builds a query; visible are the records the caller sees, from
// which search terms are mostly drawn.
func randomQuery(rng *rand.Rand, recs, visible []hierarchy.Record, parents []string) hierarchy.Query {
	statuses := []string{"enabled", "suspended", "deleted", "Deleted", "bogus"}
	keys := []string{"", "name", "description", "created_at", "updated_at", "suspended_at", "creator_name", "bogus"}
	q := hierarchy.Query{
		SortBy:        keys[rng.IntN(len(keys))],
		SortDirection: []string{"", "asc", "desc", "DESC", "up"}[rng.IntN(5)],
		Page:          rng.IntN(5) - 1,
		PageSize:      []int{0, 1, 3, 7, 20, 100, 101, -5}[rng.IntN(8)],
	}
	for range rng.IntN(3) {
		q.Status = append(q.Status, statuses[rng.IntN(len(statuses))])
	}
	if rng.IntN(3) == 0 {
		source := recs
		if len(visible) > 0 && rng.IntN(5) > 0 {
			source = visible
		}
		q.Search = randomTerm(rng, source)
	}
	if rng.IntN(6) == 0 {
		var c struct {
			CreatedByUser struct {
				UserID string `json:"user_id"`
				OrgID  string `json:"organization_id"`
			} `json:"createdByUser"`
		}
		_ = json.Unmarshal(recs[rng.IntN(len(recs))].CustomData, &c)
		q.CreatedBy = []string{c.CreatedByUser.UserID, c.CreatedByUser.OrgID, "bad id"}[:1+rng.IntN(3)]
	}
	if rng.IntN(5) == 0 {
		for range 1 + rng.IntN(3) {
			id := recs[rng.IntN(len(recs))].ID
			if len(parents) > 0 && rng.IntN(3) > 0 {
				id = parents[rng.IntN(len(parents))]
			}
			q.OrganizationIDs = append(q.OrganizationIDs, id)
		}
		q.IncludeHierarchy = rng.IntN(2) == 0
	}
	return q
}

func TestPropertyTreeMatchesReference(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range uint64(seeds) {
		shape := hierarchytest.Messy(1 + int(seed%3))
		if seed%5 == 4 {
			// Heavier on state, to exercise cascades and broken chains.
			shape.Deleted, shape.Suspended, shape.Rebranded = 0.3, 0.35, 0.3
		}
		recs := hierarchytest.RandomRecords(seed, shape)
		opts := hierarchy.Options{}
		if seed%7 == 6 {
			opts.OwnerID = recs[0].ID
		}
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			tree := hierarchy.Build(recs, opts)
			ref := newRef(recs, opts)
			rng := rand.New(rand.NewPCG(seed, 99))
			checkOrgs(t, tree, ref)
			checkVisibility(t, rng, tree, ref, recs)
			checkLists(t, rng, tree, ref, recs)
		})
	}
}

// stats is the descriptive half of Stats, from the reference.
func (ref *refTree) stats() hierarchy.Stats {
	s := hierarchy.Stats{Organizations: len(ref.orgs)}
	for _, o := range ref.orgs {
		switch o.typ {
		case hierarchy.TypeDistributor:
			s.Distributors++
		case hierarchy.TypeReseller:
			s.Resellers++
		case hierarchy.TypeCustomer:
			s.Customers++
		}
		if at, _ := ref.suspension(o); o.deleted {
			s.Deleted++
		} else if !at.IsZero() {
			s.Suspended++
		}
		properRoot := o.typ == hierarchy.TypeOwner || (o.typ == hierarchy.TypeDistributor && o.createdBy != "" && o.createdBy == ref.ownerID)
		if !properRoot && ref.parent(o) == nil {
			s.Orphans++
		}
	}
	return s
}

// checkOrgs compares every derived field.
func checkOrgs(t *testing.T, tree *hierarchy.Tree, ref *refTree) {
	t.Helper()
	if tree.Len() != len(ref.orgs) || tree.OwnerID() != ref.ownerID {
		t.Fatalf("len %d owner %q, reference %d %q", tree.Len(), tree.OwnerID(), len(ref.orgs), ref.ownerID)
	}
	got := tree.Stats()
	got.Problems = hierarchy.Problems{}
	if want := ref.stats(); got != want {
		t.Errorf("stats %+v, reference %+v", got, want)
	}
	for id, r := range ref.orgs {
		o, ok := tree.Org(id)
		if !ok {
			t.Fatalf("%s missing", id)
		}
		at, by := ref.suspension(r)
		res, cus := ref.counts(r)
		switch {
		case o.Type != r.typ:
			t.Errorf("%s: type %v, reference %v", id, o.Type, r.typ)
		case o.Deleted() != r.deleted:
			t.Errorf("%s: deleted %v, reference %v", id, o.Deleted(), r.deleted)
		case !o.SuspendedAt.Equal(at) || o.SuspendedByOrgID != by:
			t.Errorf("%s: suspended %v by %q, reference %v by %q", id, o.SuspendedAt, o.SuspendedByOrgID, at, by)
		case o.RebrandingOrgID != ref.rebranding(r):
			t.Errorf("%s: rebranding %q, reference %q", id, o.RebrandingOrgID, ref.rebranding(r))
		case o.ResellersCount != res || o.CustomersCount != cus:
			t.Errorf("%s: counts %d/%d, reference %d/%d", id, o.ResellersCount, o.CustomersCount, res, cus)
		case !o.CreatedAt.Equal(r.createdAt) || !o.UpdatedAt.Equal(r.updatedAt):
			t.Errorf("%s: times %v %v, reference %v %v", id, o.CreatedAt, o.UpdatedAt, r.createdAt, r.updatedAt)
		case o.ID != hierarchy.OrgUUID(id) || o.Name != r.name || o.ParentID != r.createdBy:
			t.Errorf("%s: identity %+v", id, o)
		case (o.Creator != nil) != (r.creator != nil):
			t.Errorf("%s: creator %+v, reference %v", id, o.Creator, r.creator)
		}
		wantPromoted := r.fields["promotedFrom"]
		if r.typ != hierarchy.TypeDistributor || string(wantPromoted) == "null" {
			wantPromoted = nil
		}
		if !bytes.Equal(o.PromotedFrom, wantPromoted) {
			t.Errorf("%s: promoted_from %s, reference %s", id, o.PromotedFrom, wantPromoted)
		}
		checkWire(t, o, r)
	}
}

// checkWire compares custom_data with customData minus the removed keys.
func checkWire(t *testing.T, o hierarchy.Org, r *refOrg) {
	t.Helper()
	var got map[string]json.RawMessage
	if err := json.Unmarshal(o.CustomData, &got); err != nil {
		t.Errorf("%s: custom_data %s is not a JSON object: %v", o.LogtoID, o.CustomData, err)
		return
	}
	want := map[string]json.RawMessage{}
	for k, v := range r.fields {
		if k == "createdByUser" || (k == "promotedFrom" && r.typ == hierarchy.TypeDistributor && o.Type == hierarchy.TypeDistributor) {
			continue
		}
		want[k] = v
	}
	if len(got) != len(want) {
		t.Errorf("%s: custom_data keys %d, reference %d", o.LogtoID, len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("%s: custom_data[%s] = %s, reference %s", o.LogtoID, k, got[k], v)
		}
	}
}

// typesOf lists the reference's organizations by type, sorted.
func typesOf(ref *refTree) map[hierarchy.Type][]string {
	byType := map[hierarchy.Type][]string{}
	for id, o := range ref.orgs {
		byType[o.typ] = append(byType[o.typ], id)
	}
	for _, list := range byType {
		slices.Sort(list)
	}
	return byType
}

// checkVisibility compares CanSee with the chain walk, for every pair.
func checkVisibility(t *testing.T, rng *rand.Rand, tree *hierarchy.Tree, ref *refTree, recs []hierarchy.Record) {
	t.Helper()
	byType := typesOf(ref)
	for range 25 {
		p := randomPrincipal(rng, ref, byType)
		for _, id := range append(slices.Collect(func(yield func(string) bool) {
			for id := range ref.orgs {
				if !yield(id) {
					return
				}
			}
		}), "unknown-org", "") {
			if got, want := tree.CanSee(p, id), ref.canSee(p, id); got != want {
				t.Fatalf("CanSee(%+v, %q) = %v, reference %v", p, id, got, want)
			}
		}
	}
}

// checkLists compares random queries, and checks that pages partition the
// result and never leave the principal's scope.
func checkLists(t *testing.T, rng *rand.Rand, tree *hierarchy.Tree, ref *refTree, recs []hierarchy.Record) {
	t.Helper()
	types := []hierarchy.Type{hierarchy.TypeCustomer, hierarchy.TypeReseller, hierarchy.TypeDistributor}
	var parents []string // distributors and resellers, for organization_id
	for id, o := range ref.orgs {
		if o.typ == hierarchy.TypeDistributor || o.typ == hierarchy.TypeReseller {
			parents = append(parents, id)
		}
	}
	slices.Sort(parents)
	nonEmpty := 0
	const queries = 80
	defer func() {
		// Guard against a vacuous test: most random queries must find something.
		if nonEmpty < queries/5 {
			t.Errorf("only %d of %d random queries matched anything", nonEmpty, queries)
		}
	}()
	byType := typesOf(ref)
	for range queries {
		p := randomPrincipal(rng, ref, byType)
		typ := types[[]int{0, 0, 0, 1, 1, 2}[rng.IntN(6)]] // customers half of the time
		var visible []hierarchy.Record
		for _, r := range recs {
			if ref.canSee(p, r.ID) {
				visible = append(visible, r)
			}
		}
		q := randomQuery(rng, recs, visible, parents)
		got := tree.List(p, typ, q)
		wantIDs, wantTotal := ref.list(p, typ, q)
		if wantTotal > 0 {
			nonEmpty++
		}
		if got.Total != wantTotal || !slices.Equal(ids(got), wantIDs) {
			t.Fatalf("List(%+v, %v, %+v)\n got %v (total %d)\nwant %v (total %d)", p, typ, q, ids(got), got.Total, wantIDs, wantTotal)
		}
		for _, o := range got.Orgs {
			if !ref.canSee(p, o.LogtoID) || o.Type != typ {
				t.Fatalf("List returned %s (%v) outside %+v's scope", o.LogtoID, o.Type, p)
			}
		}
		checkPartition(t, tree, p, typ, q, wantTotal)

		oq := hierarchy.OrgQuery{
			Search:        randomTerm(rng, recs),
			SortBy:        []string{"", "name", "description", "type", "bogus"}[rng.IntN(5)],
			SortDirection: []string{"", "desc"}[rng.IntN(2)],
			PageSize:      []int{0, 5, 50}[rng.IntN(3)],
			Page:          1 + rng.IntN(2),
		}
		if rng.IntN(3) == 0 {
			oq.Search = ""
			oq.Type = []string{"customer", "reseller", "distributor", "owner", "Customer"}[rng.IntN(5)]
		}
		if rng.IntN(5) == 0 {
			oq.Name = recs[rng.IntN(len(recs))].Name
		}
		gotOrgs := tree.ListOrganizations(p, oq)
		wantOrgs, wantOrgsTotal := ref.listOrganizations(p, oq)
		if gotOrgs.Total != wantOrgsTotal || !slices.Equal(ids(gotOrgs), wantOrgs) {
			t.Fatalf("ListOrganizations(%+v, %+v)\n got %v (total %d)\nwant %v (total %d)", p, oq, ids(gotOrgs), gotOrgs.Total, wantOrgs, wantOrgsTotal)
		}
	}
}

// checkPartition reads every page of a query and checks they partition the
// full result without overlap.
func checkPartition(t *testing.T, tree *hierarchy.Tree, p hierarchy.Principal, typ hierarchy.Type, q hierarchy.Query, total int) {
	t.Helper()
	q.PageSize = 7
	seen := map[string]bool{}
	var all []string
	for q.Page = 1; ; q.Page++ {
		page := tree.List(p, typ, q)
		if page.Total != total {
			t.Fatalf("page %d total %d, want %d", q.Page, page.Total, total)
		}
		if len(page.Orgs) == 0 {
			break
		}
		for _, o := range page.Orgs {
			if seen[o.LogtoID] {
				t.Fatalf("%s appears on two pages", o.LogtoID)
			}
			seen[o.LogtoID] = true
			all = append(all, o.LogtoID)
		}
	}
	if len(all) != total {
		t.Fatalf("pages hold %d organizations, total is %d", len(all), total)
	}
	q.Page, q.PageSize = 1, 100
	if full := ids(tree.List(p, typ, q)); total <= 100 && !slices.Equal(full, all) {
		t.Fatalf("pages %v differ from the full list %v", all, full)
	}
}
