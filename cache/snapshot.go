package cache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// The snapshot format; see "Snapshot format" in the package documentation.
const (
	snapshotMagic     = "LPXH"
	snapshotFormat    = 1
	compressionZstd   = 1
	snapshotHeaderLen = 32

	// maxSnapshotBody bounds the uncompressed body a decoder accepts, so a
	// corrupt or hostile header cannot make a replica allocate without
	// limit. 1 GiB is ten times a million-organization snapshot.
	maxSnapshotBody = 1 << 30
)

var (
	// errUnknownFormat marks a snapshot written in a format this binary does
	// not know; callers treat it as absent.
	errUnknownFormat = errors.New("unknown snapshot format")
	// errCorrupt marks a snapshot whose bytes do not decode.
	errCorrupt = errors.New("corrupt snapshot")
)

// snapshotHeader is the uncompressed head of a stored snapshot. It can be
// read without decompressing anything, so a replica can tell whether a
// snapshot is newer than the one it serves before paying for decoding it.
type snapshotHeader struct {
	generation uint64
	builtAt    time.Time
	count      int
	bodyLen    int
}

// snapshotData is a decoded snapshot: the records and where they stand.
type snapshotData[R any] struct {
	generation uint64
	builtAt    time.Time
	records    []R
}

// zstdPair is a zstd encoder and decoder. Both are safe for concurrent use
// and expensive to create, so a view creates one pair and keeps it.
type zstdPair struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newZstdPair() (zstdPair, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		return zstdPair{}, fmt.Errorf("create zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxSnapshotBody),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		_ = enc.Close()
		return zstdPair{}, fmt.Errorf("create zstd decoder: %w", err)
	}
	return zstdPair{enc: enc, dec: dec}, nil
}

// close releases the pair's zstd resources.
func (z zstdPair) close() {
	_ = z.enc.Close()
	z.dec.Close()
}

// decompress checks that blob, a stored snapshot with header h, holds
// exactly the body the header announces, and returns that body.
func (z zstdPair) decompress(blob []byte, h snapshotHeader) ([]byte, error) {
	body, err := z.dec.DecodeAll(blob[snapshotHeaderLen:], make([]byte, 0, h.bodyLen))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", errCorrupt, err)
	}
	if len(body) != h.bodyLen {
		return nil, fmt.Errorf("%w: body is %d bytes, header says %d", errCorrupt, len(body), h.bodyLen)
	}
	return body, nil
}

// snapshotCodec encodes and decodes hierarchy snapshots.
type snapshotCodec struct {
	zstdPair
}

func newSnapshotCodec() (*snapshotCodec, error) {
	z, err := newZstdPair()
	if err != nil {
		return nil, err
	}
	return &snapshotCodec{zstdPair: z}, nil
}

// encode returns the stored form of records at generation gen.
func (c *snapshotCodec) encode(gen uint64, builtAt time.Time, records []hierarchy.Record) ([]byte, error) {
	body := encodeBody(records)
	if len(body) > maxSnapshotBody || uint64(len(records)) > uint64(^uint32(0)) {
		return nil, fmt.Errorf("encode snapshot: %d records, %d bytes: too large", len(records), len(body))
	}
	out := putSnapshotHeader(snapshotMagic, snapshotFormat, gen, builtAt, len(records), len(body))
	return c.enc.EncodeAll(body, out), nil
}

// putSnapshotHeader returns a buffer that starts with a snapshot header.
func putSnapshotHeader(magic string, format uint16, gen uint64, builtAt time.Time, count, bodyLen int) []byte {
	out := make([]byte, snapshotHeaderLen, snapshotHeaderLen+bodyLen/4)
	copy(out, magic)
	binary.BigEndian.PutUint16(out[4:], format)
	binary.BigEndian.PutUint16(out[6:], compressionZstd)
	binary.BigEndian.PutUint64(out[8:], gen)
	binary.BigEndian.PutUint64(out[16:], uint64(builtAt.UnixNano()))
	binary.BigEndian.PutUint32(out[24:], uint32(count))
	binary.BigEndian.PutUint32(out[28:], uint32(bodyLen))
	return out
}

// decode parses a stored snapshot. It returns an error wrapping
// errUnknownFormat for a format this binary does not know and errCorrupt for
// bytes that do not decode; it never panics on bad input.
func (c *snapshotCodec) decode(blob []byte) (snapshotData[hierarchy.Record], error) {
	h, err := readSnapshotHeader(blob)
	if err != nil {
		return snapshotData[hierarchy.Record]{}, err
	}
	body, err := c.decompress(blob, h)
	if err != nil {
		return snapshotData[hierarchy.Record]{}, err
	}
	records, err := decodeBody(body, h.count)
	if err != nil {
		return snapshotData[hierarchy.Record]{}, err
	}
	return snapshotData[hierarchy.Record]{generation: h.generation, builtAt: h.builtAt, records: records}, nil
}

// header reads a stored hierarchy snapshot's header (recordCodec).
func (c *snapshotCodec) header(blob []byte) (snapshotHeader, error) { return readSnapshotHeader(blob) }

// readSnapshotHeader parses and validates the header of a stored hierarchy
// snapshot. Every record takes at least 6 body bytes (three empty strings,
// two time varints, one empty custom-data length).
func readSnapshotHeader(blob []byte) (snapshotHeader, error) {
	return readHeader(blob, snapshotMagic, snapshotFormat, 6)
}

// readHeader parses and validates the header of a stored snapshot of the
// given magic and format, whose records each take at least minRecordLen
// body bytes (which bounds what a corrupt count may make a decoder
// allocate).
func readHeader(blob []byte, magic string, format uint16, minRecordLen int) (snapshotHeader, error) {
	if len(blob) < 8 || string(blob[:4]) != magic {
		return snapshotHeader{}, fmt.Errorf("%w: bad magic", errUnknownFormat)
	}
	if v := binary.BigEndian.Uint16(blob[4:]); v != format {
		return snapshotHeader{}, fmt.Errorf("%w: version %d", errUnknownFormat, v)
	}
	if comp := binary.BigEndian.Uint16(blob[6:]); comp != compressionZstd {
		return snapshotHeader{}, fmt.Errorf("%w: compression %d", errUnknownFormat, comp)
	}
	if len(blob) < snapshotHeaderLen {
		return snapshotHeader{}, fmt.Errorf("%w: short header", errCorrupt)
	}
	h := snapshotHeader{
		generation: binary.BigEndian.Uint64(blob[8:]),
		builtAt:    time.Unix(0, int64(binary.BigEndian.Uint64(blob[16:]))).UTC(),
		count:      int(binary.BigEndian.Uint32(blob[24:])),
		bodyLen:    int(binary.BigEndian.Uint32(blob[28:])),
	}
	if h.bodyLen > maxSnapshotBody {
		return snapshotHeader{}, fmt.Errorf("%w: body of %d bytes exceeds the limit", errCorrupt, h.bodyLen)
	}
	if h.count > h.bodyLen/minRecordLen {
		return snapshotHeader{}, fmt.Errorf("%w: %d records cannot fit in %d bytes", errCorrupt, h.count, h.bodyLen)
	}
	return h, nil
}

// encodeBody lays records out in three columns (strings, times, custom
// data), each prefixed by its byte length. Grouping like data together
// compresses better than record-by-record, and lets the decoder turn all the
// strings into one allocation.
func encodeBody(records []hierarchy.Record) []byte {
	strLen, timeLen, dataLen := 0, 0, 0
	for i := range records {
		r := &records[i]
		strLen += lenPrefixed(len(r.ID)) + lenPrefixed(len(r.Name)) + lenPrefixed(len(r.Description))
		timeLen += binary.MaxVarintLen64 + binary.MaxVarintLen32
		dataLen += lenPrefixed(len(r.CustomData))
	}
	buf := make([]byte, 0, 3*binary.MaxVarintLen64+strLen+timeLen+dataLen)

	buf = binary.AppendUvarint(buf, uint64(strLen))
	for i := range records {
		buf = appendString(buf, records[i].ID)
		buf = appendString(buf, records[i].Name)
		buf = appendString(buf, records[i].Description)
	}

	times := make([]byte, 0, timeLen)
	for i := range records {
		t := records[i].CreatedAt
		times = binary.AppendVarint(times, t.Unix())
		times = binary.AppendUvarint(times, uint64(t.Nanosecond()))
	}
	buf = binary.AppendUvarint(buf, uint64(len(times)))
	buf = append(buf, times...)

	buf = binary.AppendUvarint(buf, uint64(dataLen))
	for i := range records {
		buf = binary.AppendUvarint(buf, uint64(len(records[i].CustomData)))
		buf = append(buf, records[i].CustomData...)
	}
	return buf
}

func lenPrefixed(n int) int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(n)) + n
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decodeBody is the inverse of encodeBody. Strings share one allocation;
// CustomData slices share the body buffer, capped so that an append by a
// reader can never overwrite a neighbour.
func decodeBody(body []byte, count int) ([]hierarchy.Record, error) {
	r := byteReader{buf: body}
	strCol := r.column()
	timeCol := r.column()
	dataCol := r.column()
	if r.err != nil || len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: bad column layout", errCorrupt)
	}

	records := make([]hierarchy.Record, count)
	strs := newStringColumn(strCol)
	times := byteReader{buf: timeCol}
	data := byteReader{buf: dataCol}
	for i := range records {
		rec := &records[i]
		rec.ID = strs.next()
		rec.Name = strs.next()
		rec.Description = strs.next()
		sec := times.varint()
		nsec := times.uvarint()
		if nsec >= uint64(time.Second) {
			return nil, fmt.Errorf("%w: record %d: nanoseconds out of range", errCorrupt, i)
		}
		rec.CreatedAt = time.Unix(sec, int64(nsec)).UTC()
		if raw := data.bytes(); len(raw) > 0 {
			rec.CustomData = json.RawMessage(raw[:len(raw):len(raw)])
		}
	}
	if strs.err != nil || times.err != nil || data.err != nil {
		return nil, fmt.Errorf("%w: truncated record data", errCorrupt)
	}
	if len(strs.buf) != 0 || len(times.buf) != 0 || len(data.buf) != 0 {
		return nil, fmt.Errorf("%w: trailing record data", errCorrupt)
	}
	return records, nil
}

// byteReader consumes varints and length-prefixed slices, remembering the
// first error so that decoding loops stay readable; after an error every
// read returns a zero value.
type byteReader struct {
	buf []byte
	err error
}

func (r *byteReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *byteReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// bytes reads a uvarint length and that many bytes.
func (r *byteReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.buf)) {
		r.err = errCorrupt
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// column is bytes under the name the body layout uses.
func (r *byteReader) column() []byte { return r.bytes() }

// stringColumn reads length-prefixed strings out of a byte column and
// returns them as substrings of one string copy of that column, so the whole
// column costs a single allocation instead of one per field.
type stringColumn struct {
	byteReader
	all string // string(column), the backing store of every result
}

func newStringColumn(col []byte) stringColumn {
	return stringColumn{byteReader: byteReader{buf: col}, all: string(col)}
}

func (c *stringColumn) next() string {
	b := c.bytes()
	if c.err != nil {
		return ""
	}
	end := len(c.all) - len(c.buf)
	return c.all[end-len(b) : end]
}
