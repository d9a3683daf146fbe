package proxy

import (
	"sync"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// A list answer is a pure function of the snapshot's tree, what the caller
// may see (its hierarchy.Scope, which names the tree too), the route and
// the query string: the tree is immutable, and the domain's List and
// ListOrganizations read the principal only through its scope. So the
// rendered answers of the current tree are remembered, and the dashboard's
// common requests — every user of an organization opening the same first
// page — cost a map lookup instead of a walk over a large subtree and a
// rendering of its page. A new snapshot empties the cache; the route
// gates (permissions) run before it, on every request.
//
// A single organization's answer (GET /customers/:id and the like) is
// remembered the same way, keyed by the caller's scope, the route and the
// id: it is found only when the organization was visible to that scope in
// that tree and of the route's type, so a hit needs neither check again,
// and a scope that cannot see an organization never finds its answer.

// pageCacheEntries and pageCacheBytes bound the cache: a page is at most
// 100 organizations, so a few thousand pages are a few tens of megabytes.
const (
	pageCacheEntries = 4096
	pageCacheBytes   = 32 << 20
)

// detailCacheEntries and detailCacheBytes bound the cache of rendered
// single organizations (~0.8 KB each): the organizations a dashboard and
// the services poll; a crawl over more of them just keeps the cache churning.
const (
	detailCacheEntries = 16384
	detailCacheBytes   = 16 << 20
)

// pageKey names one list answer of one tree.
type pageKey struct {
	scope hierarchy.Scope // includes the tree
	route string
	query string // the raw query string, as received
}

// renderedPages is a cache of rendered answers of one tree. Safe for concurrent
// use; a nil *renderedPages caches nothing.
type renderedPages struct {
	mu       sync.RWMutex
	gen      uint64
	tree     *hierarchy.Tree
	entries  map[pageKey][]byte
	bytes    int
	maxCount int
	maxBytes int
}

func newRenderedPages(maxCount, maxBytes int) *renderedPages {
	return &renderedPages{entries: map[pageKey][]byte{}, maxCount: maxCount, maxBytes: maxBytes}
}

// get returns the remembered answer for k, which must not be modified.
func (p *renderedPages) get(k pageKey) ([]byte, bool) {
	if p == nil {
		return nil, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	body, ok := p.entries[k]
	return body, ok
}

// put remembers body (which it keeps: the caller must not modify it) as
// the answer for k, rendered from the tree of snapshot generation gen. An
// answer from an older snapshot than the cache holds is not kept; one from
// a newer snapshot replaces everything.
func (p *renderedPages) put(gen uint64, tree *hierarchy.Tree, k pageKey, body []byte) {
	if p == nil || len(body) > p.maxBytes/8 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case gen < p.gen:
		return
	case gen > p.gen || tree != p.tree:
		clear(p.entries)
		p.gen, p.tree, p.bytes = gen, tree, 0
	}
	if old, ok := p.entries[k]; ok {
		p.bytes -= len(old)
	}
	p.entries[k] = body
	p.bytes += len(body)
	if len(p.entries) > p.maxCount || p.bytes > p.maxBytes {
		p.shrink()
	}
}

// shrink drops arbitrary entries down to 90% of both bounds.
func (p *renderedPages) shrink() {
	for k, body := range p.entries {
		if len(p.entries) <= p.maxCount*9/10 && p.bytes <= p.maxBytes*9/10 {
			return
		}
		delete(p.entries, k)
		p.bytes -= len(body)
	}
}
