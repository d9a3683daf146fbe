// Package cache holds logto-proxy's Redis-cached views of Logto's data.
//
// Two kinds of view live here:
//
//   - Snapshot views: HierarchyView, the whole organization hierarchy as one
//     immutable hierarchy.Tree, and UsersView, every Logto user indexed for
//     the user reads. Each is held in memory by every replica and stored in
//     Redis as a versioned, compressed snapshot of the records it was built
//     from, under a generation number that only grows. Reads never wait on
//     the source while a snapshot is in memory; one rebuild runs at a time
//     per replica (singleflight) and cluster-wide (a Redis lock with a
//     fencing token); new generations are announced over Redis pub/sub. Both
//     views are one machinery (snapshotView) parameterized by their records,
//     their derived state and their codec. The users' index depends on the
//     users alone; what depends on the hierarchy (home organizations'
//     names, suspension, deletion, visibility) is bound per request to the
//     tree the request reads, so users never disagree with the organization
//     routes.
//   - Loader: a generic read-through cache for per-key entries (a user
//     profile, an organization not yet in the snapshot): Redis, then
//     singleflight, then the source, with soft and hard TTLs, jitter and
//     negative entries for misses.
//   - SessionStore: the server-side state of session tokens (revocations,
//     one-shot refresh tokens). Every replica follows the revocations in
//     memory — pub/sub announcements written atomically with each
//     revocation, a resync on every (re)subscription and periodically — so
//     that checking a token costs no round trip; while that copy cannot be
//     trusted, checks go to Redis (revocations.go).
//
// Redis is an accelerator, never a dependency of a read: while Redis is
// unreachable the in-memory tree keeps being served, errors are counted
// through the Observer, and the view writes its snapshot back and catches up
// by itself when Redis returns. The same code path (go-redis over RESP)
// serves a real Redis, Redis Cluster or Sentinel (by configuring the
// redis.UniversalClient), and the embedded server of StartEmbedded used by
// tests and -demo.
//
// # Key layout
//
// Every key starts with a configurable prefix (DefaultPrefix,
// "logto-proxy:"). A view's keys share its hash tag, {hierarchy} or
// {users}, so that the scripts touching several of them run on one Redis
// Cluster slot:
//
//	<prefix>{hierarchy}:snapshot    string   the current snapshot (binary; see below)
//	<prefix>{hierarchy}:generation  string   decimal generation of the stored snapshot; never expires, only grows
//	<prefix>{hierarchy}:lock        string   rebuild lock, value "<fence>:<random>", PX lock TTL, renewed while held
//	<prefix>{hierarchy}:fence       string   counter that numbers the lock's fencing tokens
//	<prefix>{hierarchy}:announce    channel  pub/sub: the decimal generation just stored
//	<prefix>{users}:...             the same five keys for the users view
//	<prefix><namespace>:<key>       string   Loader entry, PX hard TTL (jittered); deliberately not
//	                                         hash-tagged, so that entries spread over the cluster
//
// The snapshot is written, together with its generation, by one Lua script
// that first checks that the writer still holds the lock (its fencing token
// is the lock's value), so a replica whose lock expired mid-rebuild cannot
// overwrite a newer snapshot, and that the generation grows.
//
// # Snapshot format (version 1)
//
// A 32-byte header, big-endian: magic "LPXH", format version (uint16),
// compression (uint16, 1 = zstd), generation (uint64), built-at (int64 Unix
// nanoseconds), record count (uint32), uncompressed body length (uint32).
// Then the zstd-compressed body: three length-prefixed columns, one entry
// per record — ID, Name and Description as uvarint-length-prefixed strings;
// CreatedAt as varint Unix seconds and uvarint nanoseconds; CustomData as
// uvarint-length-prefixed bytes. A snapshot whose magic, version or
// compression this binary does not know is treated as absent (a newer binary
// in a rolling deploy wrote it), never as an error.
//
// A users snapshot has the same header with the magic "LPXU", then its
// records one after another (see users_codec.go for the layout).
package cache
