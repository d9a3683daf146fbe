package proxy

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/gzhttp/writer"
	"github.com/klauspost/compress/gzip"
)

// Browsers ask for gzip, and the dashboard's answers repeat: every user of
// an organization opens the same first page of its customers, which the
// page cache (pages.go) answers in microseconds, and then gzip spent tens
// of microseconds compressing the same 20 KB again for each of them. So
// the compressed form of recent answers is remembered too, keyed by their
// content: the same bytes in, the same compressed bytes out, whoever asks.
// It plugs into gzhttp as its gzip implementation, so that when to
// compress, the headers, the ETag suffix and Accept-Encoding stay gzhttp's.

// compressedCacheEntries and compressedCacheBytes bound the cache (plain
// and compressed bytes together).
const (
	compressedCacheEntries = 2048
	compressedCacheBytes   = 32 << 20
)

// compressedAnswers remembers the gzip encoding of answers by their plain
// bytes. Safe for concurrent use.
type compressedAnswers struct {
	level    int
	mu       sync.RWMutex
	entries  map[uint64]compressedAnswer // by xxhash of the plain bytes
	bytes    int
	maxCount int
	maxBytes int
	// compressions counts the answers compressed rather than found, for
	// tests.
	compressions int
	writers      sync.Pool // *gzip.Writer at level
	plains       sync.Pool // *[]byte
}

// compressedAnswer is one answer, plain and compressed.
type compressedAnswer struct{ plain, gz []byte }

func newCompressedAnswers(level, maxCount, maxBytes int) *compressedAnswers {
	return &compressedAnswers{level: level, entries: map[uint64]compressedAnswer{}, maxCount: maxCount, maxBytes: maxBytes}
}

// factory is the gzip implementation to give gzhttp.
func (ca *compressedAnswers) factory() writer.GzipWriterFactory {
	return writer.GzipWriterFactory{
		Levels: func() (int, int) { return gzip.StatelessCompression, gzip.BestCompression },
		New: func(dst io.Writer, _ int) writer.GzipWriter {
			p, ok := ca.plains.Get().(*[]byte)
			if !ok {
				p = new([]byte)
			}
			return &rememberingWriter{ca: ca, dst: dst, plain: p}
		},
	}
}

// lookup returns the remembered compression of plain, if any.
func (ca *compressedAnswers) lookup(sum uint64, plain []byte) ([]byte, bool) {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	e, ok := ca.entries[sum]
	if !ok || !bytes.Equal(e.plain, plain) {
		return nil, false // never another body's bytes, even on a hash collision
	}
	return e.gz, true
}

// compress encodes plain, remembers it and returns the compressed bytes.
func (ca *compressedAnswers) compress(sum uint64, plain []byte) ([]byte, error) {
	var out bytes.Buffer
	zw := ca.writer(&out)
	_, err := zw.Write(plain)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	ca.writers.Put(zw)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	gz := out.Bytes()
	ca.mu.Lock()
	ca.compressions++
	ca.mu.Unlock()
	ca.remember(sum, bytes.Clone(plain), gz)
	return gz, nil
}

// writer is a pooled gzip writer at the cache's level, writing to dst.
func (ca *compressedAnswers) writer(dst io.Writer) *gzip.Writer {
	if zw, ok := ca.writers.Get().(*gzip.Writer); ok {
		zw.Reset(dst)
		return zw
	}
	zw, err := gzip.NewWriterLevel(dst, ca.level)
	if err != nil { // only for a level out of range, which newConventions never passes
		zw = gzip.NewWriter(dst)
	}
	return zw
}

// remember keeps an answer within the cache's bounds (dropping arbitrary
// entries down to 90 % of them when full).
func (ca *compressedAnswers) remember(sum uint64, plain, gz []byte) {
	size := len(plain) + len(gz)
	if size > ca.maxBytes/8 {
		return
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if old, ok := ca.entries[sum]; ok {
		ca.bytes -= len(old.plain) + len(old.gz)
	}
	ca.entries[sum] = compressedAnswer{plain: plain, gz: gz}
	ca.bytes += size
	if len(ca.entries) <= ca.maxCount && ca.bytes <= ca.maxBytes {
		return
	}
	for k, e := range ca.entries {
		if len(ca.entries) <= ca.maxCount*9/10 && ca.bytes <= ca.maxBytes*9/10 {
			return
		}
		delete(ca.entries, k)
		ca.bytes -= len(e.plain) + len(e.gz)
	}
}

// rememberingWriter is the gzip writer gzhttp gets for one answer: it
// collects the plain bytes and, at Close, writes their remembered
// compression, or compresses and remembers them. A Flush (a streamed
// answer) switches it to compressing as it goes, remembering nothing.
type rememberingWriter struct {
	ca        *compressedAnswers
	dst       io.Writer
	plain     *[]byte
	streaming *gzip.Writer
}

// Write implements writer.GzipWriter.
func (w *rememberingWriter) Write(p []byte) (int, error) {
	if w.streaming != nil {
		return w.streaming.Write(p)
	}
	*w.plain = append(*w.plain, p...)
	return len(p), nil
}

// Flush implements writer.GzipWriter: what was written so far is sent.
func (w *rememberingWriter) Flush() error {
	if w.streaming == nil {
		w.streaming = w.ca.writer(w.dst)
		if _, err := w.streaming.Write(*w.plain); err != nil {
			return err
		}
		w.release()
	}
	return w.streaming.Flush()
}

// Close implements writer.GzipWriter: the whole compressed answer is
// written.
func (w *rememberingWriter) Close() error {
	if w.streaming != nil {
		err := w.streaming.Close()
		w.ca.writers.Put(w.streaming)
		w.streaming = nil
		return err
	}
	defer w.release()
	plain := *w.plain
	sum := xxhash.Sum64(plain)
	gz, ok := w.ca.lookup(sum, plain)
	if !ok {
		var err error
		if gz, err = w.ca.compress(sum, plain); err != nil {
			return err
		}
	}
	_, err := w.dst.Write(gz)
	return err
}

// release returns the plain buffer to the pool (unless it grew too large to
// keep).
func (w *rememberingWriter) release() {
	if w.plain == nil {
		return
	}
	if cap(*w.plain) <= maxPooledBodyBytes {
		*w.plain = (*w.plain)[:0]
		w.ca.plains.Put(w.plain)
	}
	w.plain = nil
}
