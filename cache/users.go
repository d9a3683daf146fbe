package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// ViewUsers is the view label the UsersView reports to its Observer.
const ViewUsers = "users"

// UserRecord is one Logto user as the users view stores it: Logto's fields,
// the customData keys the upstream writes (userRoleIds, createdBy) already
// read, and the home organization already resolved. It is the seam between
// the Logto adapter, which produces records, and the index, which answers
// the user reads; records are what the Redis snapshot holds, so that a
// change in how the index derives its answers never needs a cache
// migration.
type UserRecord struct {
	// ID is the Logto user id (served as `logto_id`, and in paths).
	ID string
	// Username, Email (primaryEmail) and Name are "" when Logto has null.
	Username, Email, Name string
	// Phone is primaryPhone; nil when Logto has null (served as null).
	Phone *string
	// CustomData is Logto's customData object verbatim (`custom_data`).
	CustomData json.RawMessage
	// CreatedAt and UpdatedAt are Logto's; LastSignInAt is zero when the
	// user never signed in.
	CreatedAt, UpdatedAt, LastSignInAt time.Time
	// Suspended is Logto's isSuspended.
	Suspended bool

	// HomeOrgID is the user's home organization ("" for none), found as
	// HomeSource says; HomeCheckedAt is when a membership lookup found it
	// (zero for the other sources), so that the lookups, which are bounded
	// per rebuild, visit the oldest first.
	HomeOrgID     string
	HomeSource    HomeSource
	HomeCheckedAt time.Time

	// Roles are customData.userRoleIds named from Logto's global roles, in
	// customData's order; ids naming no role are left out.
	Roles []RoleRef
	// CreatedBy is customData.createdBy when it is a creator snapshot, else
	// nil; CreatedByOrgID is customData.createdBy when it is a plain string,
	// the creating organization's id (what the upstream writes to Logto).
	CreatedBy      *hierarchy.Creator
	CreatedByOrgID string
}

// RoleRef is a global role as a user carries it: `roles: [{id, name}]`.
type RoleRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// HomeSource says where a user's home organization came from.
type HomeSource uint8

const (
	// HomeNone: the user has no home organization (no customData
	// organizationId and no membership, or none looked up yet).
	HomeNone HomeSource = iota
	// HomeCustomData: customData.organizationId, which the upstream writes
	// on every user it creates.
	HomeCustomData
	// HomeMembership: the user's first Logto organization, looked up
	// because customData names none (the upstream's sync rule).
	HomeMembership
	numHomeSources
)

// UsersConfig configures a UsersView. Client and Source are required; the
// other fields have the same meaning and defaults as HierarchyConfig's.
type UsersConfig struct {
	// Client reaches Redis and Prefix starts every key, as for the
	// hierarchy view (the users' keys carry the {users} hash tag).
	Client redis.UniversalClient
	Prefix string
	// Source lists every user record. prev are the records served now (nil
	// before the first snapshot): a source bounds its per-user lookups (home
	// organizations from memberships) by carrying earlier results over. The
	// view takes ownership of the returned slice and never modifies it.
	Source func(ctx context.Context, prev []UserRecord) ([]UserRecord, error)

	// The freshness and protection settings, as HierarchyConfig's: past
	// SoftTTL a read triggers one background rebuild; past HardTTL the
	// users are still served, marked Stale; the other six bound the Redis
	// calls, the listing, the cluster-wide lock, the polling and the pause
	// after a failed rebuild.
	SoftTTL, HardTTL, RedisTimeout, SourceTimeout  time.Duration
	LockTTL, LockWait, CheckInterval, RetryBackoff time.Duration

	// Logger receives the view's logs (default slog.Default()).
	Logger *slog.Logger
	// Observer receives the view's measurements, labelled ViewUsers.
	Observer Observer
	// Now is the clock the TTLs are measured with (default time.Now).
	Now func() time.Time
}

// UsersView serves the users of Logto, indexed for the user reads, from
// memory: built, cached in Redis and refreshed exactly like the hierarchy
// view (same machinery, its own keys under the {users} hash tag). Its
// snapshot depends on users alone; what depends on the hierarchy (home
// organizations' names, suspension and deletion, visibility) is bound at
// read time to the tree the request reads, so that users never disagree
// with the organization routes. All methods are safe for concurrent use.
type UsersView struct {
	v *snapshotView[UserRecord, *userIndex]

	bindMu sync.Mutex            // one binding at a time; others wait for it
	bound  atomic.Pointer[Users] // the last index bound, and to which tree
}

// UsersSnapshot is what a read of the users view gets.
type UsersSnapshot struct {
	// Users are the users bound to the tree the read named.
	Users *Users
	// Generation, BuiltAt, Stale and Waited are as in Snapshot, for the
	// users snapshot.
	Generation uint64
	BuiltAt    time.Time
	Stale      bool
	Waited     bool
}

// UsersHealth is the users view's state for readiness probes; its fields
// mean what Health's do, Users counting the users of the snapshot in
// memory.
type UsersHealth struct {
	Loaded       bool
	Generation   uint64
	BuiltAt      time.Time
	Users        int
	RedisOK      bool
	PendingWrite bool
	LastRebuild  time.Time
	LastError    error
}

// NewUsersView validates cfg and returns a view that serves nothing yet.
// Call Start to load the stored snapshot and follow the other replicas; a
// view that is never started still builds on its first read.
func NewUsersView(cfg UsersConfig) (*UsersView, error) {
	vc, err := viewConfig{
		Client: cfg.Client, Prefix: cfg.Prefix,
		SoftTTL: cfg.SoftTTL, HardTTL: cfg.HardTTL, RedisTimeout: cfg.RedisTimeout, SourceTimeout: cfg.SourceTimeout,
		LockTTL: cfg.LockTTL, LockWait: cfg.LockWait, CheckInterval: cfg.CheckInterval, RetryBackoff: cfg.RetryBackoff,
		Logger: cfg.Logger, Observer: cfg.Observer, Now: cfg.Now,
	}.withDefaults(ViewUsers)
	if err != nil {
		return nil, err
	}
	if cfg.Source == nil {
		return nil, errNoSource(ViewUsers)
	}
	codec, err := newUserCodec()
	if err != nil {
		return nil, fmt.Errorf("cache: users view: %w", err)
	}
	spec := viewSpec[UserRecord, *userIndex]{
		name:   ViewUsers,
		keys:   newUsersKeys(vc.Prefix),
		source: cfg.Source,
		derive: newUserIndex,
		size:   (*userIndex).len,
		codec:  codec,
	}
	return &UsersView{v: newSnapshotView(vc, spec)}, nil
}

// Start loads the stored snapshot, if any, and follows the other replicas
// (see HierarchyView.Start).
func (u *UsersView) Start(ctx context.Context) error { return u.v.start(ctx) }

// Current returns the users to serve, bound to tree (the hierarchy the
// request reads; not nil). It never waits on Redis or Logto while a
// snapshot is in memory, and the first read after the tree or the users
// changed pays for the binding, which is linear in the number of distinct
// home organizations (see HierarchyView.Current for the rest).
func (u *UsersView) Current(ctx context.Context, tree *hierarchy.Tree) (UsersSnapshot, error) {
	if tree == nil {
		return UsersSnapshot{}, fmt.Errorf("cache: users: no hierarchy tree to bind to")
	}
	r, err := u.v.read(ctx)
	if err != nil {
		return UsersSnapshot{}, err
	}
	return UsersSnapshot{
		Users:      u.bind(r.derived, tree),
		Generation: r.gen,
		BuiltAt:    r.builtAt,
		Stale:      r.stale,
		Waited:     r.waited,
	}, nil
}

// bind returns ix bound to tree, reusing the last binding when it is the
// same pair.
func (u *UsersView) bind(ix *userIndex, tree *hierarchy.Tree) *Users {
	if b := u.bound.Load(); b != nil && b.ix == ix && b.tree == tree {
		return b
	}
	u.bindMu.Lock()
	defer u.bindMu.Unlock()
	if b := u.bound.Load(); b != nil && b.ix == ix && b.tree == tree {
		return b
	}
	b := bindUsers(ix, tree)
	u.bound.Store(b)
	return b
}

// Refresh rebuilds the users from Logto now (see HierarchyView.Refresh).
func (u *UsersView) Refresh(ctx context.Context) error { return u.v.refresh(ctx) }

// Apply commits an incremental change to the user records (a webhook's)
// as a new generation, with the guarantees of HierarchyView.Apply. fn gets
// a copy of the slice; it must not modify the records' slices, pointers or
// CustomData bytes in place, which the served snapshot shares, but may
// replace whole records.
func (u *UsersView) Apply(ctx context.Context, fn func([]UserRecord) []UserRecord) (uint64, error) {
	return u.v.applyChange(ctx, fn)
}

// AwaitGeneration blocks until the view serves generation gen or a later
// one.
func (u *UsersView) AwaitGeneration(ctx context.Context, gen uint64) error {
	_, err := u.v.awaitGeneration(ctx, gen)
	return err
}

// Ready reports whether reads are served: a snapshot is in memory.
func (u *UsersView) Ready() bool { return u.v.ready() }

// Health returns the view's state for readiness probes.
func (u *UsersView) Health() UsersHealth {
	h := u.v.healthNow()
	return UsersHealth{
		Loaded: h.loaded, Generation: h.gen, BuiltAt: h.builtAt, Users: h.entries,
		RedisOK: h.redisOK, PendingWrite: h.pendingWrite, LastRebuild: h.lastAt, LastError: h.lastErr,
	}
}

// Close stops the background work and waits for it (see
// HierarchyView.Close).
func (u *UsersView) Close() error { return u.v.close() }
