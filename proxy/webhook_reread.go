package proxy

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
)

// This file holds the webhook receiver's workers: the queues of what
// deliveries named, and the re-reads from Logto that bring the views in
// step (see webhook.go for why events are re-read rather than applied).

// rereadKind says what a queued key names.
type rereadKind uint8

const (
	// rereadOrg: an organization, re-read into the hierarchy view.
	rereadOrg rereadKind = iota
	// rereadUser: a user, re-read into the users view; its cached session
	// profile is dropped.
	rereadUser
	// rereadMember: a user whose memberships changed, re-read only when its
	// home organization comes from its memberships (customData names none);
	// its profile, whose first organization may have changed, is dropped.
	rereadMember
	// rereadMembership: an organization whose members changed without a
	// complete delta; its members are listed and treated as rereadMember,
	// with the users whose home it was by membership.
	rereadMembership
)

// rereadKey is one queued re-read.
type rereadKey struct {
	kind rereadKind
	id   string
}

// Results of a re-read, the result label of webhook_rereads_total.
const (
	rereadApplied = "applied"
	rereadRetried = "retried"
	rereadDropped = "dropped"
)

// maxRetryBackoff caps the pause between failed batches.
const maxRetryBackoff = 30 * time.Second

// rereadQueue holds the keys waiting to be re-read, each once whatever the
// number of deliveries that named it, with the attempts at it that failed,
// and wakes the worker that drains it. Its bound keeps a flood of
// deliveries from growing memory without limit.
type rereadQueue struct {
	mu      sync.Mutex
	pending map[rereadKey]int // key → failed attempts
	max     int
	wake    chan struct{} // one slot: a wake-up is pending
}

func newRereadQueue(max int) *rereadQueue {
	return &rereadQueue{pending: make(map[rereadKey]int), max: max, wake: make(chan struct{}, 1)}
}

// add queues keys afresh (a new delivery resets their failed attempts) and
// wakes the worker. It queues none and reports false when they would take
// the queue past its bound.
func (q *rereadQueue) add(keys ...rereadKey) bool {
	if len(keys) == 0 {
		return true
	}
	q.mu.Lock()
	fresh := 0
	for _, k := range keys {
		if _, ok := q.pending[k]; !ok {
			fresh++
		}
	}
	if len(q.pending)+fresh > q.max {
		q.mu.Unlock()
		return false
	}
	for _, k := range keys {
		q.pending[k] = 0
	}
	q.mu.Unlock()
	q.signal()
	return true
}

// signal wakes the worker, or leaves the pending wake-up in place.
func (q *rereadQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes up to n keys from the queue and returns them with their
// failed attempts. What it leaves keeps the worker awake.
func (q *rereadQueue) take(n int) map[rereadKey]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := make(map[rereadKey]int, min(n, len(q.pending)))
	for k, attempts := range q.pending {
		if len(batch) == n {
			break
		}
		batch[k] = attempts
		delete(q.pending, k)
	}
	if len(q.pending) > 0 {
		q.signal()
	}
	return batch
}

// retry queues failed keys again with one more failed attempt, dropping
// those that reached maxAttempts. A key a new delivery queued meanwhile
// keeps its fresh count. It reports how many keys were queued again and
// how many dropped.
func (q *rereadQueue) retry(failed map[rereadKey]int, maxAttempts int) (retried, dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, attempts := range failed {
		switch _, requeued := q.pending[k]; {
		case requeued:
			retried++
		case attempts+1 >= maxAttempts:
			dropped++
		default:
			q.pending[k] = attempts + 1
			retried++
		}
	}
	return retried, dropped
}

// rereadFunc re-reads a batch of keys into one view and commits the
// result. It returns the keys whose reads failed, to be tried again; an
// error fails the whole batch.
type rereadFunc func(ctx context.Context, keys []rereadKey) (failed []rereadKey, err error)

// work drains one queue until ctx ends: a batch at a time, each committed
// as one generation, with a growing pause after a batch that failed.
func (w *Webhooks) work(ctx context.Context, view string, q *rereadQueue, reread rereadFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		batch := q.take(w.cfg.BatchSize)
		if len(batch) == 0 {
			continue
		}
		failed := w.rereadBatch(ctx, view, batch, reread)
		if len(failed) == 0 {
			continue
		}
		retried, dropped := q.retry(failed, w.cfg.MaxAttempts)
		w.cfg.Metrics.ObserveWebhookRereads(view, rereadRetried, retried)
		w.cfg.Metrics.ObserveWebhookRereads(view, rereadDropped, dropped)
		if dropped > 0 {
			w.log.Warn("webhook re-reads given up; the next reconcile repairs them", "view", view, "records", dropped)
		}
		if retried > 0 {
			if !pause(ctx, w.backoff(failed)) {
				return
			}
			q.signal()
		}
	}
}

// rereadBatch runs one batch within Timeout and returns the keys that
// failed, with their attempts so far.
func (w *Webhooks) rereadBatch(ctx context.Context, view string, batch map[rereadKey]int, reread rereadFunc) map[rereadKey]int {
	keys := slices.Collect(maps.Keys(batch))
	bctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	failedKeys, err := reread(bctx, keys)
	switch {
	case ctx.Err() != nil: // shutting down: what is left is the reconcile's
		return nil
	case errors.Is(err, cache.ErrNotLoaded):
		// No snapshot yet: the first listing, still to come, includes the change.
		failedKeys = nil
	case err != nil:
		w.log.Warn("webhook re-read failed; it will be retried", "view", view, "records", len(keys), "err", err)
		failedKeys = keys
	}
	failed := make(map[rereadKey]int, len(failedKeys))
	for _, k := range failedKeys {
		failed[k] = batch[k]
	}
	w.cfg.Metrics.ObserveWebhookRereads(view, rereadApplied, len(keys)-len(failed))
	return failed
}

// backoff is the pause after a failed batch: RetryBackoff doubled for each
// earlier failure of its least-tried key, at most maxRetryBackoff.
func (w *Webhooks) backoff(failed map[rereadKey]int) time.Duration {
	attempts := slices.Min(slices.Collect(maps.Values(failed)))
	return min(w.cfg.RetryBackoff<<min(attempts, 16), maxRetryBackoff)
}

// pause waits d, reporting false if ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// rereadOrgs re-reads organizations under the hierarchy's cluster-wide
// lock: each becomes what Logto answers now, is added if new, and removed
// if Logto no longer has it.
func (w *Webhooks) rereadOrgs(ctx context.Context, keys []rereadKey) ([]rereadKey, error) {
	var failed []rereadKey
	_, err := w.cfg.Hierarchy.Resync(ctx, func(ctx context.Context, records []hierarchy.Record) ([]hierarchy.Record, bool, error) {
		type read struct {
			record hierarchy.Record
			found  bool
			err    error
		}
		reads := make([]read, len(keys))
		var g errgroup.Group
		g.SetLimit(w.cfg.Parallelism)
		for i, k := range keys {
			g.Go(func() error {
				o, err := w.cfg.Logto.GetOrganization(ctx, k.id)
				switch {
				case errors.Is(err, logto.ErrNotFound):
				case err != nil:
					reads[i].err = err
				default:
					reads[i] = read{record: Record(o), found: true}
				}
				return nil
			})
		}
		_ = g.Wait()
		failed = failed[:0]
		var found []hierarchy.Record
		var gone []string
		for i, r := range reads {
			switch {
			case r.err != nil:
				failed = append(failed, keys[i])
			case r.found:
				found = append(found, r.record)
			default:
				gone = append(gone, keys[i].id)
			}
		}
		next, changed := replaceRecords(records, found, gone, func(r *hierarchy.Record) string { return r.ID }, cache.SameRecord)
		return next, changed, nil
	})
	return failed, err
}

// rereadUsers re-reads users under the users view's cluster-wide lock, the
// way the view's full listing reads them (UserRecordFrom, the home
// organization from customData or else the first membership), and drops
// the cached session profiles of every user concerned, even when the view
// could not be changed.
func (w *Webhooks) rereadUsers(ctx context.Context, keys []rereadKey) ([]rereadKey, error) {
	var failed []rereadKey
	var concerned []string // whose profiles to drop
	for _, k := range keys {
		if k.kind == rereadUser || k.kind == rereadMember {
			concerned = append(concerned, k.id)
		}
	}
	defer func() { w.dropProfiles(ctx, concerned) }()
	if w.cfg.Users == nil {
		return nil, nil
	}
	_, err := w.cfg.Users.Resync(ctx, func(ctx context.Context, records []cache.UserRecord) ([]cache.UserRecord, bool, error) {
		want, members, listFailed := w.usersToReread(ctx, records, keys)
		failed = listFailed
		concerned = append(concerned, members...)
		if len(want) == 0 {
			return records, false, nil
		}
		found, gone, err := w.readUsers(ctx, want, records)
		if err != nil {
			return nil, false, err
		}
		next, changed := replaceRecords(records, found, gone, func(r *cache.UserRecord) string { return r.ID }, cache.SameUserRecord)
		return next, changed, nil
	})
	return failed, err
}

// usersToReread decides which users a batch re-reads, given the records
// served: every rereadUser; a rereadMember, or a member of a
// rereadMembership organization, unless customData fixes its home; and the
// users whose home a rereadMembership organization was by membership. It
// also returns the members it listed and the organizations it could not
// list.
func (w *Webhooks) usersToReread(ctx context.Context, records []cache.UserRecord, keys []rereadKey) (want, members []string, failed []rereadKey) {
	at := make(map[string]int, len(records))
	for i := range records {
		at[records[i].ID] = i
	}
	set := make(map[string]struct{})
	homeMayChange := func(id string) {
		if i, ok := at[id]; !ok || records[i].HomeSource != cache.HomeCustomData {
			set[id] = struct{}{}
		}
	}
	for _, k := range keys {
		switch k.kind {
		case rereadUser:
			set[k.id] = struct{}{}
		case rereadMember:
			homeMayChange(k.id)
		case rereadMembership:
			listed, err := w.cfg.Logto.ListOrganizationMembers(ctx, k.id)
			if err != nil {
				failed = append(failed, k)
				continue
			}
			for _, m := range listed {
				members = append(members, m.ID)
				homeMayChange(m.ID)
			}
			for i := range records {
				if r := &records[i]; r.HomeSource == cache.HomeMembership && r.HomeOrgID == k.id {
					members = append(members, r.ID)
					set[r.ID] = struct{}{}
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(set)), members, failed
}

// readUsers reads users from Logto as records: found are those Logto has,
// gone those it no longer has. A home organization that cannot be looked
// up keeps the one the served record had (as the full listing does).
func (w *Webhooks) readUsers(ctx context.Context, ids []string, served []cache.UserRecord) (found []cache.UserRecord, gone []string, err error) {
	users, err := w.cfg.Logto.UsersByIDs(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	roles, err := w.cfg.Logto.ListRoles(ctx)
	if err != nil {
		return nil, nil, err
	}
	names := make(map[string]string, len(roles))
	for _, r := range roles {
		names[r.ID] = r.Name
	}
	byID := make(map[string]logto.User, len(users))
	for _, u := range users {
		byID[strings.ToLower(u.ID)] = u
	}
	for _, id := range ids {
		if u, ok := byID[strings.ToLower(id)]; ok {
			found = append(found, UserRecordFrom(u, names))
		} else {
			gone = append(gone, id)
		}
	}
	deleted := w.resolveHomes(ctx, found, served)
	if len(deleted) > 0 {
		found = slices.DeleteFunc(found, func(r cache.UserRecord) bool { return slices.Contains(deleted, r.ID) })
		gone = append(gone, deleted...)
	}
	return found, gone, nil
}

// resolveHomes looks up the first membership of the records whose
// customData names no home organization. It returns the users Logto no
// longer knows (deleted since they were read).
func (w *Webhooks) resolveHomes(ctx context.Context, records, served []cache.UserRecord) (deleted []string) {
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(w.cfg.Parallelism)
	for i := range records {
		r := &records[i]
		if r.HomeSource == cache.HomeCustomData {
			continue
		}
		g.Go(func() error {
			orgs, err := w.cfg.Logto.UserOrganizations(ctx, r.ID)
			switch {
			case errors.Is(err, logto.ErrNotFound):
				mu.Lock()
				deleted = append(deleted, r.ID)
				mu.Unlock()
			case err != nil:
				if j := slices.IndexFunc(served, func(s cache.UserRecord) bool { return s.ID == r.ID }); j >= 0 {
					r.HomeOrgID, r.HomeSource, r.HomeCheckedAt = served[j].HomeOrgID, served[j].HomeSource, served[j].HomeCheckedAt
				}
			default:
				r.HomeOrgID, r.HomeSource, r.HomeCheckedAt = "", cache.HomeNone, w.cfg.Now()
				if len(orgs) > 0 {
					r.HomeOrgID, r.HomeSource = orgs[0].ID, cache.HomeMembership
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	return deleted
}

// dropProfiles drops the cached session profiles of users, so that their
// next exchange or refresh reads Logto. Failures (Redis unreachable) are
// logged: the profiles then expire by their TTL.
func (w *Webhooks) dropProfiles(ctx context.Context, ids []string) {
	if w.cfg.Profiles == nil {
		return
	}
	slices.Sort(ids)
	failed := 0
	for _, id := range slices.Compact(ids) {
		if err := w.cfg.Profiles.Invalidate(ctx, id); err != nil {
			failed++
		}
	}
	if failed > 0 {
		w.log.Warn("cached profiles not dropped; they expire by their TTL", "profiles", failed)
	}
}

// replaceRecords returns records with found put in place of the records of
// the same id (or added), and the records of the gone ids removed. records
// is never modified: a change is made on a copy, and changed is false, with
// records returned as they are, when there is nothing to change.
func replaceRecords[R any](records, found []R, gone []string, id func(*R) string, same func(a, b *R) bool) ([]R, bool) {
	at := make(map[string]int, len(records))
	for i := range records {
		at[id(&records[i])] = i
	}
	next, changed := records, false
	edit := func() {
		if !changed {
			next, changed = slices.Clone(records), true
		}
	}
	for i := range found {
		r := &found[i]
		switch j, ok := at[id(r)]; {
		case !ok:
			edit()
			next = append(next, *r)
			at[id(r)] = len(next) - 1
		case !same(&next[j], r):
			edit()
			next[j] = *r
		}
	}
	drop := make(map[string]bool)
	for _, g := range gone {
		if _, ok := at[g]; ok {
			drop[g] = true
		}
	}
	if len(drop) > 0 {
		edit()
		next = slices.DeleteFunc(next, func(r R) bool { return drop[id(&r)] })
	}
	return next, changed
}
