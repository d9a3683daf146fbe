package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
)

// The response conventions every answer under /api follows:
//
//   - A successful GET carries a strong ETag, a hash of the exact body, and
//     a matching If-None-Match gets 304 Not Modified. Hashing the body is
//     the only derivation that is correct by construction: an ETag made of
//     the snapshot generation, the caller and the URL would also have to
//     cover everything else a body depends on (the binary's rendering, data
//     outside the hierarchy such as user profiles, the two snapshots two
//     replicas may both number N while Redis is unreachable); it would also
//     needlessly differ between callers who see the same bytes. xxhash
//     makes the hash cost a small fraction of rendering the body.
//   - Cache-Control: private, no-cache: browsers may keep the answer but must
//     revalidate it (cheaply, with the ETag) and shared caches must not keep
//     it, since answers depend on the bearer token.
//   - gzip when the client accepts it and the body is worth compressing
//     (gzhttp's default minimum size), at gzip's fastest level: on a page
//     of 25 organizations a request costs ~30 % less CPU than at the default level,
//     for a body ~7 % larger, and CPU is what a replica runs out of first
//     (README, Performance). A compressed answer's ETag gets a
//     "-gzip" suffix, because a strong validator names one exact
//     representation; both spellings are accepted back in If-None-Match.
//   - X-Cache: HIT, STALE or MISS on answers read from the hierarchy
//     snapshot (see Server.snapshot), and the request id in X-Request-Id
//     and in every log line (see requestLogger).

// Header names and values of the conventions.
const (
	headerXCache       = "X-Cache"
	headerETag         = "Etag" // canonical form of ETag, as net/http keys it
	cacheControlGET    = "private, no-cache"
	gzipETagSuffix     = "-gzip"
	xCacheHit          = "HIT"
	xCacheStale        = "STALE"
	xCacheMiss         = "MISS"
	maxPooledBodyBytes = 1 << 20
)

// Header values every answer carries, shared by all requests so that
// setting them allocates nothing (h[key] = values). This is safe because
// net/http, echo, gzhttp and this package only ever replace a header's value
// slice (Set) or append to it (Add, which copies: each has len == cap), and
// never write into one in place. The keys they go under are canonical.
var (
	valuesCacheControlGET = []string{cacheControlGET}
	valuesJSON            = []string{echo.MIMEApplicationJSON}
	valuesXCacheHit       = []string{xCacheHit}
	valuesXCacheStale     = []string{xCacheStale}
	valuesXCacheMiss      = []string{xCacheMiss}
)

// answerJSON answers 200 with a rendered JSON body.
func answerJSON(c echo.Context, body []byte) error {
	c.Response().Header()[echo.HeaderContentType] = valuesJSON // c.Blob keeps a Content-Type already set
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// snapshotWait bounds how long a request waits for the first hierarchy load
// of a cold replica; once a snapshot is in memory, reads never wait.
const snapshotWait = 15 * time.Second

// conventions is the middleware that applies the conventions above. It owns
// its pools, so that nothing is shared between Servers.
type conventions struct {
	gzip       func(http.Handler) http.HandlerFunc
	compressed *compressedAnswers // gzip's implementation (gzipcache.go)
	bodies     sync.Pool          // *bufferedResponse
}

// newConventions builds the middleware's gzip wrapper (zstd off: one
// compressed representation per ETag), compressing through the cache of
// compressed answers.
func newConventions() (*conventions, error) {
	ca := newCompressedAnswers(gzip.BestSpeed, compressedCacheEntries, compressedCacheBytes)
	gz, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false), gzhttp.SuffixETag(gzipETagSuffix),
		gzhttp.Implementation(ca.factory()), gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, fmt.Errorf("proxy: gzip middleware: %w", err)
	}
	return &conventions{gzip: gz, compressed: ca}, nil
}

// middleware applies the conventions to every request under /api. Errors of
// the handlers below are turned into answers here (c.Error), while the
// compressing writer is still in place, so error bodies are compressed like
// any other and the middlewares above always see a written response.
func (cv *conventions) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if !strings.HasPrefix(req.URL.Path, "/api/") {
			return next(c)
		}
		res := c.Response()
		orig := res.Writer
		defer func() { res.Writer = orig }()
		cv.gzip(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if req.Method != http.MethodGet {
				res.Writer = w
				serve(c, next)
				return
			}
			buf := cv.buffer(w.Header())
			defer cv.release(buf)
			res.Writer = buf
			serve(c, next)
			finishGET(c, w, buf)
		})).ServeHTTP(orig, req)
		return nil
	}
}

// serve runs the handler chain and answers its error, if any.
func serve(c echo.Context, next echo.HandlerFunc) {
	if err := next(c); err != nil {
		c.Error(err)
	}
}

// finishGET writes a buffered GET answer: with ETag and Cache-Control when
// it succeeded, or as 304 when the client already holds that body.
func finishGET(c echo.Context, w http.ResponseWriter, buf *bufferedResponse) {
	h := w.Header()
	if buf.status == http.StatusOK {
		etag := quotedBodyTag(buf.body)
		h[echo.HeaderCacheControl] = valuesCacheControlGET
		h.Set(headerETag, etag)
		if held, ok := matchIfNoneMatch(c.Request().Header.Values("If-None-Match"), etag[1:len(etag)-1]); ok {
			h.Set(headerETag, held)
			h.Del(echo.HeaderContentType)
			h.Del(echo.HeaderContentLength)
			c.Response().Status = http.StatusNotModified
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if buf.status == 0 && len(buf.body) == 0 {
		return // nothing was written; net/http answers 200 with no body
	}
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(buf.body)))
	if buf.status != 0 {
		w.WriteHeader(buf.status)
	}
	_, _ = w.Write(buf.body) // a write error is the client going away
}

// quotedBodyTag is a body's strong ETag, quoted: "<hex xxhash64>".
func quotedBodyTag(body []byte) string {
	var b [18]byte
	tag := strconv.AppendUint(append(b[:0], '"'), xxhash.Sum64(body), 16)
	return string(append(tag, '"'))
}

// matchIfNoneMatch reports whether an If-None-Match header names the body
// whose tag is tag, with the weak comparison RFC 9110 §13.1.2 prescribes,
// accepting the gzip-suffixed spelling too, and returns the entity tag to
// send with the 304: the one the client holds.
func matchIfNoneMatch(values []string, tag string) (string, bool) {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "*" {
				return `"` + tag + `"`, true
			}
			item = strings.TrimPrefix(item, "W/")
			if len(item) < 2 || item[0] != '"' || item[len(item)-1] != '"' {
				continue
			}
			switch opaque := item[1 : len(item)-1]; opaque {
			case tag, tag + gzipETagSuffix:
				return item, true
			}
		}
	}
	return "", false
}

// bufferedResponse holds a GET answer until it is complete, so that its
// ETag can be computed and checked before anything is sent. Its header is
// the real response's, so headers set by handlers go through untouched.
type bufferedResponse struct {
	header http.Header
	status int
	body   []byte
}

// Header is the underlying response's header map.
func (b *bufferedResponse) Header() http.Header { return b.header }

// WriteHeader records the first status written.
func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

// Write buffers p; a write without a status is a 200, as in net/http.
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.body = append(b.body, p...)
	return len(p), nil
}

// Flush does nothing: the answer is sent whole, once complete.
func (b *bufferedResponse) Flush() {}

// buffer takes a bufferedResponse from the pool.
func (cv *conventions) buffer(h http.Header) *bufferedResponse {
	b, ok := cv.bodies.Get().(*bufferedResponse)
	if !ok {
		b = &bufferedResponse{}
	}
	b.header, b.status, b.body = h, 0, b.body[:0]
	return b
}

// release returns b to the pool unless it grew too large to keep.
func (cv *conventions) release(b *bufferedResponse) {
	if cap(b.body) > maxPooledBodyBytes {
		return
	}
	b.header = nil
	cv.bodies.Put(b)
}

// snapshot returns the hierarchy snapshot to answer from and marks the
// answer's X-Cache: STALE when the snapshot is past its hard TTL (Logto
// unreachable), MISS when this request had to wait for it to be loaded,
// HIT otherwise.
func (s *Server) snapshot(c echo.Context) (cache.Snapshot, error) {
	ctx := c.Request().Context()
	if !s.cfg.Hierarchy.Ready() {
		// Only a cold replica waits, and only so long; once a snapshot is
		// in memory Current never waits, and a deadline (a timer) per
		// request would be pure cost.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, snapshotWait)
		defer cancel()
	}
	snap, err := s.cfg.Hierarchy.Current(ctx)
	if err != nil {
		return snap, fmt.Errorf("read hierarchy: %w", err)
	}
	markCache(c, snap.Stale, snap.Waited)
	return snap, nil
}

// markCache sets X-Cache for an answer read from a cached view: STALE when
// the view is past its hard TTL, MISS when the read waited for a load, HIT
// otherwise. Any route answering from a view (hierarchy, users) uses it.
func markCache(c echo.Context, stale, waited bool) {
	status := valuesXCacheHit
	switch {
	case stale:
		status = valuesXCacheStale
	case waited:
		status = valuesXCacheMiss
	}
	c.Response().Header()[headerXCache] = status
}

// requestLogger is the server's logger with the request's id, so that
// every line a handler logs can be matched with the request log line and
// the client's X-Request-Id.
func (s *Server) requestLogger(c echo.Context) *slog.Logger {
	return s.cfg.Logger.With(slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)))
}
