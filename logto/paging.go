package logto

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// pageSize is Logto's maximum page size, used for every listing.
const pageSize = 100

// maxListTotal bounds the Total-Number this client believes, so that a
// corrupt header cannot make it plan millions of page requests.
const maxListTotal = 1_000_000

// listing describes a paged collection: the request for one page (page and
// page_size are added per page) and how to identify an item for de-duplication.
type listing[T any] struct {
	req request
	id  func(T) string
}

// listAll reads every page of l and returns the items de-duplicated by id.
// A pass whose unique count does not match Total-Number (or whose pages
// disagree on it) is retried whole, up to ListAttempts passes, then fails
// with ErrInconsistentListing: callers never get a partial list.
func listAll[T any](ctx context.Context, c *Client, l listing[T]) ([]T, error) {
	var err error
	for pass := 0; pass < c.cfg.ListAttempts; pass++ {
		if pass > 0 {
			c.log.WarnContext(ctx, "logto: listing did not reconcile, reading it again",
				"op", l.req.route, "pass", pass+1, "error", err)
			if serr := sleep(ctx, fullJitter(c.cfg.BackoffBase, c.cfg.BackoffCap, pass-1)); serr != nil {
				return nil, fmt.Errorf("logto: %s: %w", l.req.route, serr)
			}
		}
		var items []T
		items, err = listOnce(ctx, c, l)
		if err == nil {
			return items, nil
		}
		if !errors.Is(err, ErrInconsistentListing) {
			return nil, err
		}
	}
	return nil, err
}

// page is one fetched page with the Total-Number it reported.
type page[T any] struct {
	items    []T
	total    int
	hasTotal bool
}

// listOnce makes one pass: the first page tells Total-Number, the remaining
// pages are fetched with bounded parallelism, then everything is merged and
// reconciled.
func listOnce[T any](ctx context.Context, c *Client, l listing[T]) ([]T, error) {
	first, err := fetchPage(ctx, c, l, 1)
	if err != nil {
		return nil, err
	}
	if !first.hasTotal {
		return listSequential(ctx, c, l, first)
	}
	if first.total > maxListTotal {
		return nil, &Error{Op: l.req.route, Kind: KindInvalidResponse,
			Message: fmt.Sprintf("Total-Number %d exceeds %d", first.total, maxListTotal)}
	}
	pages := make([]page[T], max(1, (first.total+pageSize-1)/pageSize))
	pages[0] = first
	err = forEachParallel(ctx, len(pages)-1, c.cfg.ListParallelism, func(ctx context.Context, i int) error {
		p, err := fetchPage(ctx, c, l, i+2)
		pages[i+1] = p
		return err
	})
	if err != nil {
		return nil, err
	}
	items, pageTotalsAgree := mergePages(pages, l.id, first.total)
	if !pageTotalsAgree || len(items) != first.total {
		return nil, &Error{Op: l.req.route, Kind: KindInconsistentListing,
			Message: fmt.Sprintf("%d unique items over %d pages, Total-Number %d (pages agree on it: %t)",
				len(items), len(pages), first.total, pageTotalsAgree)}
	}
	return items, nil
}

// mergePages concatenates pages in order, keeping the first occurrence of
// each id, and reports whether every page announced the same total.
func mergePages[T any](pages []page[T], id func(T) string, total int) ([]T, bool) {
	agree := true
	seen := make(map[string]struct{}, total)
	items := make([]T, 0, total)
	for _, p := range pages {
		if !p.hasTotal || p.total != total {
			agree = false
		}
		for _, it := range p.items {
			k := id(it)
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			items = append(items, it)
		}
	}
	return items, agree
}

// listSequential handles an answer without Total-Number (an endpoint whose
// pagination is optional and ignored): pages are read one after another until
// a short page. An answer longer than a page means the server ignored paging
// and sent everything.
func listSequential[T any](ctx context.Context, c *Client, l listing[T], first page[T]) ([]T, error) {
	pages := []page[T]{first}
	for last := first; len(last.items) == pageSize; {
		if len(pages)*pageSize >= maxListTotal {
			return nil, &Error{Op: l.req.route, Kind: KindInvalidResponse, Message: "listing never ends"}
		}
		next, err := fetchPage(ctx, c, l, len(pages)+1)
		if err != nil {
			return nil, err
		}
		pages = append(pages, next)
		last = next
	}
	for i := range pages {
		pages[i].hasTotal = true // nothing to reconcile against
	}
	items, _ := mergePages(pages, l.id, 0)
	return items, nil
}

// fetchPage reads page n (1-based) of l.
func fetchPage[T any](ctx context.Context, c *Client, l listing[T], n int) (page[T], error) {
	r := l.req
	r.method, r.auth = http.MethodGet, authM2M // every listing is a Management API read
	r.query = url.Values{}
	for k, v := range l.req.query {
		r.query[k] = v
	}
	r.query.Set("page", strconv.Itoa(n))
	r.query.Set("page_size", strconv.Itoa(pageSize))

	var p page[T]
	resp, err := c.getJSON(ctx, &r, &p.items)
	if err != nil {
		return p, err
	}
	if v := resp.header.Get("Total-Number"); v != "" {
		total, err := strconv.Atoi(v)
		if err != nil || total < 0 {
			return p, &Error{Op: r.route, Kind: KindInvalidResponse, Status: resp.status,
				Message: "malformed Total-Number header"}
		}
		p.total, p.hasTotal = total, true
	}
	return p, nil
}

// forEachParallel calls fn for 0..n-1 with at most width calls at a time and
// returns the first error, cancelling the calls still running or not started.
func forEachParallel(ctx context.Context, n, width int, fn func(ctx context.Context, i int) error) error {
	if n <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(width, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
	fed := 0
feed:
	for ; fed < n; fed++ {
		select {
		case next <- fed:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && fed < n {
		// The parent was cancelled before every call started: not a success.
		return fmt.Errorf("logto: listing: %w", ctx.Err())
	}
	return firstErr
}
