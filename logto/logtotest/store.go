package logtotest

import (
	"cmp"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
)

// tenantID is the single tenant of a self-hosted Logto.
const tenantID = "default"

// idAlphabet and idLength are Logto's generateStandardId: 12 characters of
// [0-9a-z].
const (
	idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	idLength   = 12
)

// secretAlphabet is used for application secrets and hook signing keys
// (Logto's generateStandardSecret: 32 alphanumeric characters).
const secretAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// emptyObject is the "{}" default of Logto's jsonb columns. It is never
// mutated: every stored json.RawMessage is replaced, never written into.
func emptyObject() json.RawMessage { return json.RawMessage(`{}`) }

// tenant is the in-memory Logto tenant: every entity and relation, guarded
// by one RWMutex. Stored values are replaced wholesale on update and never
// mutated in place, so a value copied out under the read lock can be encoded
// after the lock is released.
type tenant struct {
	mu  sync.RWMutex
	rng *rand.Rand // ids, secrets and the organizations' physical order

	orgs     map[string]*orgEntry
	orgOrder []*orgEntry // the "heap order" organizations are listed in

	users     map[string]*userEntry
	userOrder []*userEntry // ascending (createdAt, id); listed in reverse

	orgRoles  map[string]*orgRoleEntry
	orgScopes map[string]*OrganizationScope

	roles     map[string]*roleEntry
	resources map[string]*Resource
	scopes    map[string]*Scope

	apps  map[string]*appEntry
	hooks map[string]*Hook
}

// orgEntry is an organization and its relations.
type orgEntry struct {
	org       Organization
	nameLower string
	// members maps a member user id to the set of organization role ids it holds.
	members map[string]map[string]struct{}
	// apps maps a member application id to its organization role ids.
	apps map[string]map[string]struct{}
}

// userEntry is a user and its relations.
type userEntry struct {
	user  User
	roles map[string]struct{} // global role ids
	orgs  map[string]struct{} // organization ids
}

// orgRoleEntry is an organization role with the scopes it grants.
type orgRoleEntry struct {
	role           OrganizationRole
	scopeIDs       map[string]struct{} // organization scopes
	resourceScopes map[string]struct{} // API resource scopes
}

// roleEntry is a global role with its resource scopes.
type roleEntry struct {
	role     Role
	scopeIDs map[string]struct{}
}

// appEntry is an application (only M2M ones are modelled).
type appEntry struct {
	id            string
	name          string
	secret        string
	secretExpires int64 // epoch ms; 0 = never
	roles         map[string]struct{}
}

func newTenant(seed uint64) *tenant {
	return &tenant{
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		orgs:      make(map[string]*orgEntry),
		users:     make(map[string]*userEntry),
		orgRoles:  make(map[string]*orgRoleEntry),
		orgScopes: make(map[string]*OrganizationScope),
		roles:     make(map[string]*roleEntry),
		resources: make(map[string]*Resource),
		scopes:    make(map[string]*Scope),
		apps:      make(map[string]*appEntry),
		hooks:     make(map[string]*Hook),
	}
}

// randomString draws n characters of alphabet from the tenant's seeded
// generator. Callers hold the write lock.
func (t *tenant) randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[t.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// newID returns a fresh 12-character id unused by any entity. Callers hold
// the write lock.
func (t *tenant) newID() string {
	for {
		id := t.randomString(idAlphabet, idLength)
		if !t.idTaken(id) {
			return id
		}
	}
}

func (t *tenant) idTaken(id string) bool {
	if _, ok := t.orgs[id]; ok {
		return true
	}
	if _, ok := t.users[id]; ok {
		return true
	}
	if _, ok := t.orgRoles[id]; ok {
		return true
	}
	if _, ok := t.orgScopes[id]; ok {
		return true
	}
	if _, ok := t.roles[id]; ok {
		return true
	}
	if _, ok := t.resources[id]; ok {
		return true
	}
	if _, ok := t.scopes[id]; ok {
		return true
	}
	if _, ok := t.apps[id]; ok {
		return true
	}
	_, ok := t.hooks[id]
	return ok
}

func (t *tenant) newSecret() string { return t.randomString(secretAlphabet, 32) }

// insertOrg adds an organization at a random place of the physical order, so
// that listing order is neither sorted nor insertion order (Postgres without
// ORDER BY). Callers hold the write lock.
func (t *tenant) insertOrg(e *orgEntry) {
	t.orgs[e.org.ID] = e
	pos := t.rng.IntN(len(t.orgOrder) + 1)
	t.orgOrder = slices.Insert(t.orgOrder, pos, e)
}

// removeOrg deletes an organization and silently drops its memberships, as
// Postgres' ON DELETE CASCADE does. Callers hold the write lock.
func (t *tenant) removeOrg(e *orgEntry) {
	delete(t.orgs, e.org.ID)
	if i := slices.Index(t.orgOrder, e); i >= 0 {
		t.orgOrder = slices.Delete(t.orgOrder, i, i+1)
	}
	for uid := range e.members {
		if u := t.users[uid]; u != nil {
			delete(u.orgs, e.org.ID)
		}
	}
}

// shuffleOrgs permutes the physical order of the organizations. Callers hold
// the write lock.
func (t *tenant) shuffleOrgs() {
	t.rng.Shuffle(len(t.orgOrder), func(i, j int) {
		t.orgOrder[i], t.orgOrder[j] = t.orgOrder[j], t.orgOrder[i]
	})
}

func compareUserOrder(a, b *userEntry) int {
	if c := cmp.Compare(a.user.CreatedAt, b.user.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.user.ID, b.user.ID)
}

// insertUser adds a user keeping userOrder sorted. Callers hold the write lock.
func (t *tenant) insertUser(e *userEntry) {
	t.users[e.user.ID] = e
	i, _ := slices.BinarySearchFunc(t.userOrder, e, compareUserOrder)
	t.userOrder = slices.Insert(t.userOrder, i, e)
}

// removeUser deletes a user and silently drops its memberships. Callers hold
// the write lock.
func (t *tenant) removeUser(e *userEntry) {
	delete(t.users, e.user.ID)
	if i, ok := slices.BinarySearchFunc(t.userOrder, e, compareUserOrder); ok {
		t.userOrder = slices.Delete(t.userOrder, i, i+1)
	}
	for oid := range e.orgs {
		if o := t.orgs[oid]; o != nil {
			delete(o.members, e.user.ID)
		}
	}
}

// memberRoles returns the organization roles a member holds, sorted by name
// as Logto returns them. Callers hold a lock.
func (t *tenant) memberRoles(roleIDs map[string]struct{}) []RoleRef {
	refs := make([]RoleRef, 0, len(roleIDs))
	for id := range roleIDs {
		if r := t.orgRoles[id]; r != nil {
			refs = append(refs, RoleRef{ID: r.role.ID, Name: r.role.Name})
		}
	}
	slices.SortFunc(refs, func(a, b RoleRef) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return refs
}

// orgRoleByName finds an organization role by its exact name. Callers hold a
// lock.
func (t *tenant) orgRoleByName(name string) *orgRoleEntry {
	for _, r := range t.orgRoles {
		if r.role.Name == name {
			return r
		}
	}
	return nil
}

// resourceByIndicator finds an API resource by its indicator. Callers hold a
// lock.
func (t *tenant) resourceByIndicator(indicator string) *Resource {
	for _, r := range t.resources {
		if r.Indicator == indicator {
			return r
		}
	}
	return nil
}

// defaultResource returns the resource marked as default, if any. Callers
// hold a lock.
func (t *tenant) defaultResource() *Resource {
	for _, r := range t.resources {
		if r.IsDefault {
			return r
		}
	}
	return nil
}

// scopeNames returns the names of the given resource scopes that belong to
// resourceID. Callers hold a lock.
func (t *tenant) scopeNames(scopeIDs map[string]struct{}, resourceID string) map[string]struct{} {
	names := make(map[string]struct{})
	for id := range scopeIDs {
		if sc := t.scopes[id]; sc != nil && sc.ResourceID == resourceID {
			names[sc.Name] = struct{}{}
		}
	}
	return names
}

func setOf(ids ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
