package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
)

func TestMatchIfNoneMatch(t *testing.T) {
	const tag = "abc123"
	for _, tc := range []struct {
		header []string
		held   string
		ok     bool
	}{
		{nil, "", false},
		{[]string{`"abc123"`}, `"abc123"`, true},
		{[]string{`W/"abc123"`}, `"abc123"`, true},
		{[]string{`"abc123-gzip"`}, `"abc123-gzip"`, true},
		{[]string{`"other", "abc123"`}, `"abc123"`, true},
		{[]string{`"other"`, ` W/"abc123-gzip" `}, `"abc123-gzip"`, true},
		{[]string{`*`}, `"abc123"`, true},
		{[]string{`abc123`}, "", false}, // unquoted: not an entity tag
		{[]string{`"abc12"`, `"abc1234"`, `"abc123-zstd"`, `"`, `""`, `W/`}, "", false},
	} {
		held, ok := matchIfNoneMatch(tc.header, tag)
		if held != tc.held || ok != tc.ok {
			t.Errorf("If-None-Match %q: (%q, %v), want (%q, %v)", tc.header, held, ok, tc.held, tc.ok)
		}
	}
}

// identity asks for an uncompressed answer (Go's client otherwise asks for
// gzip and decompresses behind the test's back).
var identity = []string{"Accept-Encoding", "identity"}

func TestETagAndNotModified(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	first := h.get(t, "d1", "/api/customers", identity...)
	etag := first.Header.Get("ETag")
	if first.Status != http.StatusOK || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
		t.Fatalf("no strong ETag: %d %q", first.Status, etag)
	}
	if cc := first.Header.Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	again := h.get(t, "d1", "/api/customers", identity...)
	if again.Header.Get("ETag") != etag || !bytes.Equal(again.Body, first.Body) {
		t.Errorf("the same answer changed ETag: %q then %q", etag, again.Header.Get("ETag"))
	}
	for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, "*"} {
		r := h.get(t, "d1", "/api/customers", append(slicesOf(identity), "If-None-Match", inm)...)
		if r.Status != http.StatusNotModified || len(r.Body) != 0 || r.Header.Get("ETag") == "" {
			t.Errorf("If-None-Match %s: %d %q (ETag %q), want 304 without body", inm, r.Status, r.Body, r.Header.Get("ETag"))
		}
		if r.Header.Get("X-Cache") == "" || r.Header.Get("Cache-Control") == "" {
			t.Errorf("If-None-Match %s: 304 lacks X-Cache or Cache-Control: %v", inm, r.Header)
		}
	}
	if r := h.get(t, "d1", "/api/customers", append(slicesOf(identity), "If-None-Match", `"stale"`)...); r.Status != http.StatusOK {
		t.Errorf("a non-matching If-None-Match got %d", r.Status)
	}

	// Another caller's different body has another ETag, and d1's tag does
	// not let it skip its own body.
	other := h.get(t, "d1r1", "/api/customers", append(slicesOf(identity), "If-None-Match", etag)...)
	if other.Status != http.StatusOK || other.Header.Get("ETag") == etag {
		t.Errorf("d1r1 with d1's ETag: %d, ETag %q", other.Status, other.Header.Get("ETag"))
	}

	// A change in Logto changes the body, hence the ETag.
	mergeCustomData(t, h, "d1c1", map[string]any{"notes": "changed"})
	refresh(t, h)
	changed := h.get(t, "d1", "/api/customers", append(slicesOf(identity), "If-None-Match", etag)...)
	if changed.Status != http.StatusOK || changed.Header.Get("ETag") == etag {
		t.Errorf("after a change: %d, ETag %q (was %q)", changed.Status, changed.Header.Get("ETag"), etag)
	}

	// Refusals and errors carry no validator.
	for _, path := range []string{"/api/distributors", "/api/customers/nope"} {
		r := h.get(t, "d1", path, identity...)
		if r.Status < 400 || r.Header.Get("ETag") != "" {
			t.Errorf("%s: %d with ETag %q", path, r.Status, r.Header.Get("ETag"))
		}
	}
}

func slicesOf(s []string) []string { return append([]string(nil), s...) }

// rawGet is a GET whose body is returned exactly as sent (the harness's
// do decodes JSON, which a gzipped body is not).
func rawGet(t *testing.T, h *harness, persona, path string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token(t, persona))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{Status: resp.StatusCode, Header: resp.Header}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGzip(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	const path = "/api/customers?page_size=100"
	plain := h.get(t, "owner", path, identity...)
	if plain.Header.Get("Content-Encoding") != "" || plain.Status != http.StatusOK {
		t.Fatalf("identity answer: %d, Content-Encoding %q", plain.Status, plain.Header.Get("Content-Encoding"))
	}
	if len(plain.Body) < 1024 {
		t.Fatalf("the test needs a body worth compressing, got %d bytes", len(plain.Body))
	}
	zipped := rawGet(t, h, "owner", path, "Accept-Encoding", "gzip, deflate, br")
	if zipped.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(zipped.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip answer headers: %v", zipped.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped.Body))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, plain.Body) {
		t.Errorf("gunzipped body differs from the identity body")
	}
	plainTag, zippedTag := plain.Header.Get("ETag"), zipped.Header.Get("ETag")
	if zippedTag != strings.TrimSuffix(plainTag, `"`)+`-gzip"` {
		t.Errorf("gzip ETag %q, identity ETag %q: want the -gzip spelling", zippedTag, plainTag)
	}
	for _, inm := range []string{zippedTag, plainTag} {
		r := rawGet(t, h, "owner", path, "Accept-Encoding", "gzip", "If-None-Match", inm)
		if r.Status != http.StatusNotModified || len(r.Body) != 0 || r.Header.Get("ETag") != inm {
			t.Errorf("gzip request with If-None-Match %s: %d %q, ETag %q", inm, r.Status, r.Body, r.Header.Get("ETag"))
		}
	}
	if r := rawGet(t, h, "owner", path, "Accept-Encoding", "gzip;q=0, identity"); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 was compressed")
	}
	// Large error bodies are rare; small answers are not worth compressing.
	if r := rawGet(t, h, "owner", "/api/customers/nope", "Accept-Encoding", "gzip"); r.Header.Get("Content-Encoding") != "" ||
		!strings.Contains(string(r.Body), `"customer not found"`) {
		t.Errorf("a small error answer: %v %s", r.Header, r.Body)
	}
}

// viewClock is a settable clock for the hierarchy view's TTLs.
type viewClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *viewClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *viewClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestXCache(t *testing.T) {
	t.Run("HIT", func(t *testing.T) {
		h := newHarness(t, harnessOptions{})
		if r := h.get(t, "d1", "/api/organizations"); r.Header.Get("X-Cache") != "HIT" {
			t.Errorf("X-Cache %q, want HIT", r.Header.Get("X-Cache"))
		}
	})
	t.Run("MISS then HIT", func(t *testing.T) {
		h := newHarness(t, harnessOptions{Cold: true})
		first := h.get(t, "d1", "/api/customers")
		second := h.get(t, "d1", "/api/customers")
		if first.Status != http.StatusOK || first.Header.Get("X-Cache") != "MISS" || second.Header.Get("X-Cache") != "HIT" {
			t.Errorf("cold replica: %d X-Cache %q, then %q; want MISS then HIT", first.Status, first.Header.Get("X-Cache"), second.Header.Get("X-Cache"))
		}
	})
	t.Run("STALE", func(t *testing.T) {
		clock := &viewClock{now: time.Now()}
		h := newHarness(t, harnessOptions{View: func(c *cache.HierarchyConfig) {
			c.Now, c.SoftTTL, c.HardTTL = clock.Now, time.Minute, 10*time.Minute
		}})
		h.sim.Faults().SetOutage(true)
		clock.Advance(11 * time.Minute)
		r := h.get(t, "d1", "/api/customers/"+h.orgID(t, "d1c1"))
		if r.Status != http.StatusOK || r.Header.Get("X-Cache") != "STALE" {
			t.Errorf("past the hard TTL with Logto down: %d X-Cache %q, want 200 STALE", r.Status, r.Header.Get("X-Cache"))
		}
	})
}

// syncBuffer is a log sink safe for the server's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// A replica that cannot load the hierarchy answers the upstream's 500, and
// every line logged about the request carries its X-Request-Id.
func TestFailedReadIsLoggedWithTheRequestID(t *testing.T) {
	logs := &syncBuffer{}
	h := newHarness(t, harnessOptions{Cold: true, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		View: func(c *cache.HierarchyConfig) { c.SourceTimeout = 2 * time.Second }})
	h.sim.Faults().SetOutage(true)
	r := h.get(t, "d1", "/api/customers")
	if r.Status != http.StatusInternalServerError || r.Env.Message != "failed to list customers" || string(r.Env.Data) != "null" {
		t.Fatalf("%d %s, want 500 failed to list customers", r.Status, r.Body)
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatal("no X-Request-Id")
	}
	var messages []string
	for _, line := range logs.lines() {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		messages = append(messages, entry["msg"].(string))
		if entry["request_id"] != id {
			t.Errorf("log line without the request id %s: %s", id, line)
		}
	}
	if !strings.Contains(strings.Join(messages, "|"), "failed to list customers") || len(messages) < 2 {
		t.Errorf("log messages %v, want the failure and the request line", messages)
	}
}
