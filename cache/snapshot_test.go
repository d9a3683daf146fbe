package cache

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

func newTestCodec(t testing.TB) *snapshotCodec {
	t.Helper()
	c, err := newSnapshotCodec()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

func TestSnapshotRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	builtAt := time.Date(2025, 6, 1, 12, 30, 45, 123456789, time.UTC)
	for _, n := range []int{0, 1, 2, 1000} {
		records := GenRecords(n, uint64(n))
		blob, err := c.encode(42, builtAt, records)
		if err != nil {
			t.Fatalf("n=%d: encode: %v", n, err)
		}
		got, err := c.decode(blob)
		if err != nil {
			t.Fatalf("n=%d: decode: %v", n, err)
		}
		if got.generation != 42 || !got.builtAt.Equal(builtAt) {
			t.Errorf("n=%d: header = generation %d, built %v; want 42, %v", n, got.generation, got.builtAt, builtAt)
		}
		if len(got.records) != n || (n > 0 && !reflect.DeepEqual(got.records, records)) {
			t.Errorf("n=%d: records differ after a round trip", n)
		}
	}
}

func TestSnapshotRoundTripEdgeCases(t *testing.T) {
	c := newTestCodec(t)
	rome := time.FixedZone("CET", 3600)
	long := string(bytes.Repeat([]byte("x"), 70000))
	records := []hierarchy.Record{
		{},
		{ID: "a", Name: "Ünïcødé 名前", Description: long, CustomData: json.RawMessage(`{"k":[1,2,3]}`),
			CreatedAt: time.Date(2024, 2, 29, 23, 59, 59, 999999999, rome)},
		{ID: "b", CreatedAt: time.Unix(-1, 5)},
		{ID: "c", CustomData: json.RawMessage(`null`), CreatedAt: time.UnixMilli(1717171717171)},
	}
	blob, err := c.encode(1, time.Unix(0, 1), records)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.records) != len(records) {
		t.Fatalf("decoded %d records, want %d", len(got.records), len(records))
	}
	for i, want := range records {
		g := got.records[i]
		if g.ID != want.ID || g.Name != want.Name || g.Description != want.Description ||
			!bytes.Equal(g.CustomData, want.CustomData) || !g.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("record %d = %+v, want %+v", i, g, want)
		}
	}
	if !got.records[0].CreatedAt.IsZero() {
		t.Errorf("zero CreatedAt decoded as %v", got.records[0].CreatedAt)
	}
}

// TestSnapshotCustomDataIsolated checks that appending to one decoded
// record's CustomData cannot overwrite the next record's.
func TestSnapshotCustomDataIsolated(t *testing.T) {
	c := newTestCodec(t)
	records := []hierarchy.Record{
		{ID: "a", CustomData: json.RawMessage(`{"a":1}`)},
		{ID: "b", CustomData: json.RawMessage(`{"b":2}`)},
	}
	blob, err := c.encode(1, time.Now(), records)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got.records[0].CustomData, "XXXXXXXX"...)
	if string(got.records[1].CustomData) != `{"b":2}` {
		t.Fatalf("second record's custom data changed to %q", got.records[1].CustomData)
	}
}

func TestSnapshotUnknownFormat(t *testing.T) {
	c := newTestCodec(t)
	blob, err := c.encode(7, time.Now(), GenRecords(10, 1))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(b []byte){
		"magic":       func(b []byte) { b[0] = 'X' },
		"version":     func(b []byte) { binary.BigEndian.PutUint16(b[4:], snapshotFormat+1) },
		"compression": func(b []byte) { binary.BigEndian.PutUint16(b[6:], 9) },
	}
	for name, mutate := range cases {
		b := bytes.Clone(blob)
		mutate(b)
		if _, err := c.decode(b); !errors.Is(err, errUnknownFormat) {
			t.Errorf("%s changed: err = %v, want errUnknownFormat", name, err)
		}
	}
	for _, b := range [][]byte{nil, []byte("LP"), []byte(`{"json":"not a snapshot"}`)} {
		if _, err := c.decode(b); !errors.Is(err, errUnknownFormat) {
			t.Errorf("decode(%q): err = %v, want errUnknownFormat", b, err)
		}
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	c := newTestCodec(t)
	blob, err := c.encode(7, time.Now(), GenRecords(50, 2))
	if err != nil {
		t.Fatal(err)
	}
	for n := 8; n < len(blob); n++ {
		if _, err := c.decode(blob[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err = %v, want errCorrupt", n, len(blob), err)
		}
	}
	cases := map[string]func(b []byte){
		"count too large": func(b []byte) { binary.BigEndian.PutUint32(b[24:], 1<<31) },
		"count too small": func(b []byte) { binary.BigEndian.PutUint32(b[24:], 49) },
		"body too large":  func(b []byte) { binary.BigEndian.PutUint32(b[28:], maxSnapshotBody+1) },
		"body length":     func(b []byte) { binary.BigEndian.PutUint32(b[28:], binary.BigEndian.Uint32(b[28:])-1) },
		"payload byte":    func(b []byte) { b[len(b)-10] ^= 0xff },
	}
	for name, mutate := range cases {
		b := bytes.Clone(blob)
		mutate(b)
		if _, err := c.decode(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

func TestSnapshotCorruptBody(t *testing.T) {
	c := newTestCodec(t)
	// Well-compressed bodies of one record whose column data is wrong. The
	// three columns are: strings, times, custom data.
	nanos := binary.AppendUvarint([]byte{0}, uint64(time.Second))
	bodies := map[string][]byte{
		"empty columns":       {0, 0, 0, 0, 0, 0},
		"missing record":      {3, 0, 0, 0, 0, 0},
		"column overruns":     {5, 'a', 0, 0, 0, 0},
		"string overruns":     {2, 5, 'a', 2, 0, 0, 1, 0},
		"trailing record":     {6, 0, 0, 0, 0, 0, 0, 2, 0, 0, 1, 0},
		"nanoseconds too big": append(append([]byte{3, 0, 0, 0, byte(len(nanos))}, nanos...), 1, 0),
	}
	for name, body := range bodies {
		blob := make([]byte, snapshotHeaderLen)
		copy(blob, snapshotMagic)
		binary.BigEndian.PutUint16(blob[4:], snapshotFormat)
		binary.BigEndian.PutUint16(blob[6:], compressionZstd)
		binary.BigEndian.PutUint32(blob[24:], 1)
		binary.BigEndian.PutUint32(blob[28:], uint32(len(body)))
		blob = c.enc.EncodeAll(body, blob)
		if _, err := c.decode(blob); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

func FuzzSnapshotDecode(f *testing.F) {
	c := newTestCodec(f)
	for _, n := range []int{0, 1, 5} {
		blob, err := c.encode(uint64(n), time.Unix(int64(n), 0), GenRecords(n, uint64(n)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		got, err := c.decode(blob)
		if err != nil {
			if !errors.Is(err, errCorrupt) && !errors.Is(err, errUnknownFormat) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Whatever decodes must survive a round trip unchanged.
		again, err := c.encode(got.generation, got.builtAt, got.records)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.decode(again)
		if err != nil || len(back.records) != len(got.records) {
			t.Fatalf("round trip of a decoded snapshot failed: %v", err)
		}
	})
}

// benchRecords is the size the issue asks the benchmarks for.
const benchRecords = 100_000

func BenchmarkSnapshotEncode(b *testing.B) {
	c := newTestCodec(b)
	records := GenRecords(benchRecords, 1)
	var size int
	b.ReportAllocs()
	for b.Loop() {
		blob, err := c.encode(1, time.Now(), records)
		if err != nil {
			b.Fatal(err)
		}
		size = len(blob)
	}
	b.ReportMetric(float64(size), "bytes/snapshot")
}

func BenchmarkSnapshotDecode(b *testing.B) {
	c := newTestCodec(b)
	blob, err := c.encode(1, time.Now(), GenRecords(benchRecords, 1))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.decode(blob); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(blob)), "bytes/snapshot")
}

// BenchmarkSnapshotDecodeAndBuild is the whole cost of loading a snapshot:
// decoding plus hierarchy.Build.
func BenchmarkSnapshotDecodeAndBuild(b *testing.B) {
	c := newTestCodec(b)
	blob, err := c.encode(1, time.Now(), GenRecords(benchRecords, 1))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		data, err := c.decode(blob)
		if err != nil {
			b.Fatal(err)
		}
		if hierarchy.Build(data.records, hierarchy.Options{}).Len() != benchRecords {
			b.Fatal("wrong tree size")
		}
	}
}

// The baselines below justify the format: JSON instead of the binary
// columns, and stdlib flate instead of zstd.

func BenchmarkSnapshotBaselineJSON(b *testing.B) {
	records := GenRecords(benchRecords, 1)
	raw, err := json.Marshal(records)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(records); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(raw)), "bytes/uncompressed")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []hierarchy.Record
			if err := json.Unmarshal(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSnapshotBaselineFlate(b *testing.B) {
	body := encodeBody(GenRecords(benchRecords, 1))
	var compressed []byte
	b.Run("compress", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			w, err := flate.NewWriter(&buf, flate.DefaultCompression)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(body); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			compressed = buf.Bytes()
		}
		b.ReportMetric(float64(len(compressed)), "bytes/snapshot")
	})
	b.Run("decompress", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := io.ReadAll(flate.NewReader(bytes.NewReader(compressed))); err != nil {
				b.Fatal(err)
			}
		}
	})
}
