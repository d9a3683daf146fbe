package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzip"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// mustGunzip is gunzip (openapi_test.go) failing the test on an error.
func mustGunzip(t *testing.T, gz []byte) []byte {
	t.Helper()
	plain, err := gunzip(gz)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// TestCompressedAnswersAreRemembered: the same answer asked again with
// gzip is sent in the very bytes of its first compression without
// compressing it again, other answers are compressed as their own, and
// every compressed answer is its plain answer.
func TestCompressedAnswersAreRemembered(t *testing.T) {
	h := newHarness(t, harnessOptions{Bulk: &logtotest.BulkOptions{Distributors: 2, ResellersPerDistributor: 2, CustomersPerReseller: 10}})
	ca := h.server.conv.compressed
	paths := []string{"/api/customers?page_size=100", "/api/customers?page_size=100&sort_by=name", "/api/organizations?page_size=100"}
	first := map[string][]byte{}
	for round := range 3 {
		for _, path := range paths {
			plain := h.get(t, "owner", path, identity...)
			zipped := rawGet(t, h, "owner", path, "Accept-Encoding", "gzip")
			if zipped.Header.Get("Content-Encoding") != "gzip" || len(plain.Body) < 1024 {
				t.Fatalf("%s: not compressed (%d plain bytes): %v", path, len(plain.Body), zipped.Header)
			}
			if !bytes.Equal(mustGunzip(t, zipped.Body), plain.Body) {
				t.Errorf("%s, round %d: the compressed answer is not the plain one", path, round)
			}
			if round == 0 {
				first[path] = zipped.Body
			} else if !bytes.Equal(zipped.Body, first[path]) {
				t.Errorf("%s, round %d: compressed differently than the first time", path, round)
			}
		}
	}
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	if ca.compressions != len(paths) {
		t.Errorf("%d compressions for %d distinct answers asked 3 times each", ca.compressions, len(paths))
	}
}

// TestCompressedAnswersNeverCrossBodies: an entry found under a body's hash
// is used only for that very body (a hash collision answers a miss).
func TestCompressedAnswersNeverCrossBodies(t *testing.T) {
	ca := newCompressedAnswers(gzip.BestSpeed, 10, 1<<20)
	a, b := []byte(strings.Repeat("a tenant's answer ", 100)), []byte(strings.Repeat("another tenant's ", 100))
	gzB, err := ca.compress(xxhash.Sum64(b), b)
	if err != nil {
		t.Fatal(err)
	}
	// Plant b's entry under a's hash, as a collision would.
	ca.entries[xxhash.Sum64(a)] = ca.entries[xxhash.Sum64(b)]
	if got, ok := ca.lookup(xxhash.Sum64(a), a); ok {
		t.Fatalf("a's lookup returned another body's compression (%d bytes)", len(got))
	}
	var out bytes.Buffer
	w := ca.factory().New(&out, gzip.BestSpeed)
	if _, err := w.Write(a); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustGunzip(t, out.Bytes()); !bytes.Equal(got, a) || bytes.Equal(out.Bytes(), gzB) {
		t.Errorf("a was answered with %q", got)
	}
}

// TestCompressedAnswersStream: a flushed answer is compressed as it goes
// (what was written before the flush is sent by it) and not remembered.
func TestCompressedAnswersStream(t *testing.T) {
	ca := newCompressedAnswers(gzip.BestSpeed, 10, 1<<20)
	var out bytes.Buffer
	w := ca.factory().New(&out, gzip.BestSpeed)
	if _, err := w.Write([]byte("first part, ")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.Len() == 0 {
		t.Fatal("a flush sent nothing")
	}
	if _, err := w.Write([]byte("second part")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustGunzip(t, out.Bytes()); string(got) != "first part, second part" {
		t.Errorf("streamed answer %q", got)
	}
	if len(ca.entries) != 0 || ca.compressions != 0 {
		t.Errorf("a streamed answer was remembered: %d entries", len(ca.entries))
	}
}

// TestCompressedAnswersBounds: the cache keeps within its entry and byte
// bounds and refuses answers too large for it.
func TestCompressedAnswersBounds(t *testing.T) {
	ca := newCompressedAnswers(gzip.BestSpeed, 10, 64<<10)
	for i := range 100 {
		body := []byte(strings.Repeat(string(rune('a'+i%26)), 1000+i))
		if _, err := ca.compress(xxhash.Sum64(body), body); err != nil {
			t.Fatal(err)
		}
		if len(ca.entries) > 10 || ca.bytes > 64<<10 {
			t.Fatalf("after %d answers: %d entries, %d bytes", i+1, len(ca.entries), ca.bytes)
		}
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	if _, err := ca.compress(xxhash.Sum64(big), big); err != nil {
		t.Fatal(err)
	}
	if _, ok := ca.lookup(xxhash.Sum64(big), big); ok {
		t.Error("an answer larger than an eighth of the cache was kept")
	}
}
