package cache

import "time"

// ViewHierarchy is the view label the HierarchyView reports to its Observer;
// a Loader reports its namespace instead.
const ViewHierarchy = "hierarchy"

// Observer receives the cache's measurements. It exists so that this package
// stays free of any metrics library: the HTTP layer implements it with
// Prometheus counters, gauges and histograms. Implementations must be safe
// for concurrent use and must not block, because some methods are called on
// the read path.
type Observer interface {
	// CacheHit counts a read served from a cached entry within its hard TTL
	// (for a Loader, a cached negative entry too).
	CacheHit(view string)
	// CacheMiss counts a read that found nothing usable cached and had to
	// wait for Redis or the source.
	CacheMiss(view string)
	// StaleServed counts a read served past its hard TTL because refreshing
	// keeps failing (the HTTP layer answers X-Cache: STALE).
	StaleServed(view string)
	// SnapshotInstalled reports the snapshot a view now serves: its
	// generation, when its records were read from the source (the age gauge
	// is now minus builtAt) and how many entries it holds (organizations for
	// ViewHierarchy, users for ViewUsers).
	SnapshotInstalled(view string, generation uint64, builtAt time.Time, entries int)
	// RebuildFinished reports one rebuild attempt of a view: how long it
	// took and how it ended.
	RebuildFinished(view string, d time.Duration, outcome RebuildOutcome)
	// RedisError counts a failed Redis operation, labelled by what the cache
	// was doing: "generation", "snapshot_get", "snapshot_put", "publish",
	// "lock", "lock_renew", "unlock" (hierarchy view), "loader_get",
	// "loader_set", "loader_del" (loaders). A caller's own cancellation is
	// not counted.
	RedisError(op string)
	// LockContended counts an attempt to take a cluster-wide lock that
	// another replica held.
	LockContended(lock string)
}

// RebuildOutcome says how a rebuild attempt of a snapshot view ended; it
// is the label of the rebuild metrics.
type RebuildOutcome string

const (
	// OutcomeBuilt: the source was listed and the new snapshot stored in
	// Redis and announced.
	OutcomeBuilt RebuildOutcome = "built"
	// OutcomeLocal: the source was listed but Redis could not store the
	// snapshot; it is served from memory and written back when Redis
	// returns.
	OutcomeLocal RebuildOutcome = "local"
	// OutcomeLoaded: another replica had built a recent enough snapshot,
	// which was loaded from Redis without calling the source.
	OutcomeLoaded RebuildOutcome = "loaded"
	// OutcomeFenced: this replica lost the lock while building, so its
	// snapshot was discarded rather than overwrite a newer one.
	OutcomeFenced RebuildOutcome = "fenced"
	// OutcomeFailed: the source (or waiting for another replica) failed.
	OutcomeFailed RebuildOutcome = "failed"
)

// NopObserver is an Observer that discards everything. Embed it to implement
// only the methods you care about, or use it where metrics are not wanted.
type NopObserver struct{}

// CacheHit implements Observer.
func (NopObserver) CacheHit(string) {}

// CacheMiss implements Observer.
func (NopObserver) CacheMiss(string) {}

// StaleServed implements Observer.
func (NopObserver) StaleServed(string) {}

// SnapshotInstalled implements Observer.
func (NopObserver) SnapshotInstalled(string, uint64, time.Time, int) {}

// RebuildFinished implements Observer.
func (NopObserver) RebuildFinished(string, time.Duration, RebuildOutcome) {}

// RedisError implements Observer.
func (NopObserver) RedisError(string) {}

// LockContended implements Observer.
func (NopObserver) LockContended(string) {}
