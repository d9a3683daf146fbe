package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// Errors the views (HierarchyView, UsersView) return that callers may want
// to tell apart.
var (
	// ErrClosed: the view was closed.
	ErrClosed = errors.New("cache: view closed")
	// ErrNotLoaded: Apply found no snapshot to apply a change to; the next
	// full rebuild will include the change anyway.
	ErrNotLoaded = errors.New("cache: no snapshot loaded")
)

// HierarchyConfig configures a HierarchyView. Client and Source are
// required; every other field has a default.
type HierarchyConfig struct {
	// Client reaches Redis. Use a redis.UniversalClient so that a single
	// server, Cluster or Sentinel is a matter of configuration. Enable
	// ContextTimeoutEnabled on it so that RedisTimeout bounds socket I/O too.
	Client redis.UniversalClient
	// Prefix starts every key (default DefaultPrefix).
	Prefix string
	// Source lists every organization record (a full Logto listing). The view
	// takes ownership of the returned slice and never modifies it.
	Source func(ctx context.Context) ([]hierarchy.Record, error)
	// Options are passed to hierarchy.Build.
	Options hierarchy.Options

	// SoftTTL is the age past which a read triggers one background rebuild
	// (default 5m).
	SoftTTL time.Duration
	// HardTTL is the age past which a snapshot is still served, because the
	// rebuilds are failing, but reported Stale (default 1h).
	HardTTL time.Duration
	// RedisTimeout bounds each Redis call (default 1s).
	RedisTimeout time.Duration
	// SourceTimeout bounds one call of Source (default 2m).
	SourceTimeout time.Duration
	// LockTTL is the expiry of the cluster-wide rebuild lock; the holder
	// renews it every third of it (default 30s).
	LockTTL time.Duration
	// LockWait bounds how long a replica that finds the lock held waits for
	// the holder's new generation before giving up (default SourceTimeout).
	LockWait time.Duration
	// CheckInterval is how often the generation key is polled, which
	// catches missed announcements and writes the snapshot back after a
	// Redis outage (default 5s).
	CheckInterval time.Duration
	// RetryBackoff is the pause after a failed background rebuild before a
	// read may trigger another (default 15s).
	RetryBackoff time.Duration

	// Logger receives the view's logs (default slog.Default()).
	Logger *slog.Logger
	// Observer receives the view's measurements (default NopObserver).
	Observer Observer
	// Now is the clock the TTLs are measured with (default time.Now).
	Now func() time.Time
}

// view validates c and returns the shared part of the configuration, with
// its defaults applied.
func (c HierarchyConfig) view() (viewConfig, error) {
	vc, err := viewConfig{
		Client: c.Client, Prefix: c.Prefix,
		SoftTTL: c.SoftTTL, HardTTL: c.HardTTL, RedisTimeout: c.RedisTimeout, SourceTimeout: c.SourceTimeout,
		LockTTL: c.LockTTL, LockWait: c.LockWait, CheckInterval: c.CheckInterval, RetryBackoff: c.RetryBackoff,
		Logger: c.Logger, Observer: c.Observer, Now: c.Now,
	}.withDefaults(ViewHierarchy)
	if err == nil && c.Source == nil {
		err = errNoSource(ViewHierarchy)
	}
	return vc, err
}

// Snapshot is what a read of the hierarchy view gets: an immutable tree and
// where it stands.
type Snapshot struct {
	// Tree is the hierarchy; never nil in a Snapshot returned without error.
	Tree *hierarchy.Tree
	// Generation numbers the snapshot cluster-wide; it only grows.
	Generation uint64
	// BuiltAt is when the records were read from the source.
	BuiltAt time.Time
	// Stale is true when the snapshot is past the hard TTL and served only
	// because rebuilding keeps failing (X-Cache: STALE).
	Stale bool
	// Waited is true when this read found no snapshot in memory and had to
	// wait for one to be loaded or built (X-Cache: MISS).
	Waited bool
}

// Health is the view's state for readiness probes and dashboards.
type Health struct {
	// Loaded: a snapshot is in memory, so reads are served.
	Loaded bool
	// Generation, BuiltAt and Orgs describe the snapshot in memory.
	Generation uint64
	BuiltAt    time.Time
	Orgs       int
	// RedisOK: the last Redis call succeeded (false before the first).
	RedisOK bool
	// PendingWrite: the snapshot in memory was built while Redis was
	// unreachable and is not stored yet; it is written back on a later
	// check.
	PendingWrite bool
	// LastRebuild is when the last rebuild attempt ended and LastError its
	// error (nil when it succeeded).
	LastRebuild time.Time
	LastError   error
	// Stats describes the tree in memory (zero before the first), including
	// the bad data its rules repaired.
	Stats hierarchy.Stats
}

// HierarchyView serves the organization hierarchy from memory, keeps it in
// step with the other replicas through Redis, and rebuilds it from the
// source when it ages. It is the only thing the HTTP layer reads the
// hierarchy from. All methods are safe for concurrent use.
type HierarchyView struct {
	v *snapshotView[hierarchy.Record, *hierarchy.Tree]
}

// NewHierarchyView validates cfg and returns a view that serves nothing yet.
// Call Start to load the stored snapshot and follow the other replicas; a
// view that is never started still builds on its first read.
func NewHierarchyView(cfg HierarchyConfig) (*HierarchyView, error) {
	vc, err := cfg.view()
	if err != nil {
		return nil, err
	}
	codec, err := newSnapshotCodec()
	if err != nil {
		return nil, fmt.Errorf("cache: hierarchy view: %w", err)
	}
	opts := cfg.Options
	return &HierarchyView{newSnapshotView(vc, viewSpec[hierarchy.Record, *hierarchy.Tree]{
		name: ViewHierarchy,
		keys: newHierarchyKeys(vc.Prefix),
		source: func(ctx context.Context, _ []hierarchy.Record) ([]hierarchy.Record, error) {
			return cfg.Source(ctx)
		},
		derive: func(records []hierarchy.Record) *hierarchy.Tree {
			tree := hierarchy.Build(records, opts)
			// Bad data is repaired by the domain's rules; say so once per
			// tree, with the counts (exported as metrics through Health).
			if p := tree.Stats().Problems; p.Total() > 0 {
				vc.Logger.Warn("hierarchy built with bad data repaired by rules", "view", ViewHierarchy, "problems", p)
			}
			return tree
		},
		size:  (*hierarchy.Tree).Len,
		codec: codec,
	})}, nil
}

// Start loads the snapshot stored in Redis, if any, subscribes to the
// announcements of new generations and starts polling the generation key.
// ctx bounds only the initial load; the background work lasts until Close.
// Redis being unreachable is not an error: the view builds from the source
// on its first read and catches up when Redis returns.
func (h *HierarchyView) Start(ctx context.Context) error { return h.v.start(ctx) }

// Current returns the hierarchy to serve. While a snapshot is in memory it
// never waits on Redis or the source: a snapshot past the soft TTL triggers
// one background rebuild and is served meanwhile, and one past the hard TTL
// is still served, marked Stale. With nothing in memory, the first callers
// wait for one load or build, shared by all of them.
func (h *HierarchyView) Current(ctx context.Context) (Snapshot, error) {
	r, err := h.v.read(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	return snapshotOf(r), nil
}

// Refresh rebuilds the hierarchy from the source now (webhooks and the
// periodic reconcile use it) and returns once a snapshot read from the
// source after the call is installed — built here, or by another replica
// that held the lock. ctx bounds the wait and the rebuild.
func (h *HierarchyView) Refresh(ctx context.Context) error { return h.v.refresh(ctx) }

// Apply changes the current records with fn (an incremental change, such as
// a webhook's), stores the result as a new generation and announces it,
// under the cluster-wide lock so that concurrent changes on several
// replicas never overwrite each other. Concurrent Apply calls on one replica
// are committed together, as one generation. fn receives a copy of the slice
// it may reorder, shorten or extend; it must not modify the CustomData bytes
// of the records in it, which are shared with the snapshot being served.
// The snapshot's BuiltAt is kept: a change does not make the rest of the
// records fresher. Apply returns the generation that includes the change.
// If ctx ends while the change is already being committed, Apply still
// waits for that commit (it is bounded by LockWait and RedisTimeout).
func (h *HierarchyView) Apply(ctx context.Context, fn func([]hierarchy.Record) []hierarchy.Record) (uint64, error) {
	return h.v.applyChange(ctx, fn)
}

// AwaitGeneration blocks until the view serves generation gen or a later
// one, so that a caller can read its own write (or, in tests, another
// replica's) without polling.
func (h *HierarchyView) AwaitGeneration(ctx context.Context, gen uint64) (Snapshot, error) {
	r, err := h.v.awaitGeneration(ctx, gen)
	if err != nil {
		return Snapshot{}, err
	}
	return snapshotOf(r), nil
}

// Ready reports whether reads are served: a snapshot is in memory.
func (h *HierarchyView) Ready() bool { return h.v.ready() }

// Health returns the view's state for readiness probes: whether a snapshot
// is loaded, whether Redis answers, and how the last rebuild went.
func (h *HierarchyView) Health() Health {
	vh := h.v.healthNow()
	health := Health{
		Loaded: vh.loaded, Generation: vh.gen, BuiltAt: vh.builtAt, Orgs: vh.entries,
		RedisOK: vh.redisOK, PendingWrite: vh.pendingWrite, LastRebuild: vh.lastAt, LastError: vh.lastErr,
	}
	if st := h.v.current.Load(); st != nil {
		health.Stats = st.derived.Stats()
	}
	return health
}

// Close stops the background work and waits for it. The snapshot in memory
// stays readable through Current; nothing is rebuilt any more.
func (h *HierarchyView) Close() error { return h.v.close() }

func snapshotOf(r viewRead[*hierarchy.Tree]) Snapshot {
	return Snapshot{Tree: r.derived, Generation: r.gen, BuiltAt: r.builtAt, Stale: r.stale, Waited: r.waited}
}
