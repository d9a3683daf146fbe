package hierarchy

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode"
	"unicode/utf8"
)

// recMeta is what parsing a record yields besides its Org: what Build needs
// to place the organization in the tree and to report bad data. It is kept
// small because Build holds one per record.
type recMeta struct {
	// blob is the lower-cased search text: name NUL description NUL then every
	// searchable top-level value, each followed by NUL. blob[:nameEnd] is the
	// name sort key, blob[nameEnd+1:descEnd] the description sort key.
	blob    string
	nameEnd int32
	descEnd int32

	// typ is the customData.type read as a level, 0 when absent or unknown;
	// typeAbsent tells the two apart (an absent type is how the Owner is
	// recognised).
	typ        Type
	typeAbsent bool
	rebranding bool
	// creatorNameNull is true when the snapshot has no string `name` (the
	// upstream's NULL, which sorts last ascending).
	creatorNameNull bool

	// Per-record problem counts.
	malformed, badTimestamp, badField uint8
}

// keyKind classifies the customData keys the domain reads.
type keyKind uint8

const (
	keyOther keyKind = iota
	keyType
	keyCreatedBy
	keyCreatedByUser
	keyCreatedAt
	keyUpdatedAt
	keySuspendedAt
	keyDeletedAt
	keyRebranding
	keyPromotedFrom
)

// The customData keys, spelled once.
const (
	cdType          = "type"
	cdCreatedBy     = "createdBy"
	cdCreatedByUser = "createdByUser"
	cdCreatedAt     = "createdAt"
	cdUpdatedAt     = "updatedAt"
	cdSuspendedAt   = "suspendedAt"
	cdDeletedAt     = "deletedAt"
	cdRebranding    = "rebrandingEnabled"
	cdPromotedFrom  = "promotedFrom"
)

// span is one top-level member's text [start, end) in the customData bytes.
type span struct {
	start, end int
	kind       keyKind
}

// scratch holds per-worker buffers reused across records, so that parsing a
// record allocates only what the Tree keeps.
type scratch struct {
	blob  []byte
	cbuf  []byte
	spans []span
}

// fields are the raw value tokens of the keys the domain reads; the last
// occurrence of a duplicated key wins, as in encoding/json.
type fields struct {
	typ, createdBy, createdByUser []byte
	createdAt, updatedAt          []byte
	suspendedAt, deletedAt        []byte
	rebranding, promotedFrom      []byte
}

// parseRecord reads r once into o and m. It never fails: what it cannot read
// is counted in m and replaced by the documented defaults. o.SuspendedAt
// receives the direct suspension only; Build adds the cascade.
func parseRecord(r *Record, o *Org, m *recMeta, sc *scratch) {
	o.LogtoID = r.ID
	o.Name = r.Name
	o.Description = r.Description
	o.ID = OrgUUID(r.ID)

	data := bytes.TrimSpace(r.CustomData)
	var it objectIter
	ok := false
	switch {
	case len(data) == 0 || string(data) == "null":
		// Absent customData is an empty object, not a problem.
	case !json.Valid(data):
		m.malformed++
	default:
		if it, ok = newObjectIter(data); !ok {
			m.malformed++ // valid JSON, but not an object
		}
	}

	var f fields
	blob := appendLower(sc.blob[:0], r.Name)
	m.nameEnd = int32(len(blob))
	blob = append(blob, 0)
	blob = appendLower(blob, r.Description)
	m.descEnd = int32(len(blob))
	blob = append(blob, 0)
	spans := sc.spans[:0]
	for ok {
		key, val, start, end, more := it.next()
		if !more {
			break
		}
		kind := classifyKey(key)
		spans = append(spans, span{start: start, end: end, kind: kind})
		f.set(kind, val)
		if kind != keyCreatedBy && kind != keyCreatedByUser {
			blob = appendSearchValue(blob, val)
		}
	}
	sc.spans = spans

	m.readType(f.typ)
	o.ParentID = m.readString(f.createdBy)
	m.readTimes(r, o, &f)
	m.rebranding = m.readBool(f.rebranding)
	o.Creator, m.creatorNameNull = m.readCreator(f.createdByUser, sc)
	if m.typ == TypeDistributor && isPresent(f.promotedFrom) {
		o.PromotedFrom = bytes.Clone(f.promotedFrom)
	}
	o.CustomData = wireCustomData(data, ok, spans, m.typ == TypeDistributor)

	m.blob = string(blob)
	sc.blob = blob
}

// set records the value token of a key the domain reads.
func (f *fields) set(kind keyKind, val []byte) {
	switch kind {
	case keyType:
		f.typ = val
	case keyCreatedBy:
		f.createdBy = val
	case keyCreatedByUser:
		f.createdByUser = val
	case keyCreatedAt:
		f.createdAt = val
	case keyUpdatedAt:
		f.updatedAt = val
	case keySuspendedAt:
		f.suspendedAt = val
	case keyDeletedAt:
		f.deletedAt = val
	case keyRebranding:
		f.rebranding = val
	case keyPromotedFrom:
		f.promotedFrom = val
	}
}

// readType applies the type rule: absent, null or "" is "absent" (the Owner's
// mark, and a customer otherwise); a known level is taken; anything else is
// unknown (a customer, counted by Build once the Owner is known).
func (m *recMeta) readType(tok []byte) {
	if !isPresent(tok) {
		m.typeAbsent = true
		return
	}
	s, ok := decodeString(tok)
	if !ok {
		return
	}
	if s == "" {
		m.typeAbsent = true
		return
	}
	m.typ, _ = ParseType(s)
}

// readString reads an optional string field; a present non-string value is a
// BadField problem and reads as "".
func (m *recMeta) readString(tok []byte) string {
	if !isPresent(tok) {
		return ""
	}
	s, ok := decodeString(tok)
	if !ok {
		m.badField++
	}
	return s
}

// readBool reads an optional boolean field; only JSON true is true, and a
// present non-boolean value is a BadField problem.
func (m *recMeta) readBool(tok []byte) bool {
	switch string(tok) {
	case "true":
		return true
	case "", "false", "null":
		return false
	}
	m.badField++
	return false
}

// readTimes applies the timestamp rules (see the package documentation).
func (m *recMeta) readTimes(r *Record, o *Org, f *fields) {
	created, ok := m.readTime(f.createdAt)
	if !ok {
		created = r.CreatedAt.UTC()
	}
	updated, ok := m.readTime(f.updatedAt)
	if !ok {
		updated = created
	}
	o.CreatedAt, o.UpdatedAt = created, updated

	// A present but unreadable deletedAt/suspendedAt still marks the
	// organization (failing closed), dated at its last update.
	if isSet(f.deletedAt) {
		t, _ := m.readTime(f.deletedAt)
		o.DeletedAt = markTime(t, updated)
	}
	if isSet(f.suspendedAt) {
		t, _ := m.readTime(f.suspendedAt)
		o.SuspendedAt = markTime(t, updated)
	}
}

// readTime parses an optional RFC 3339 timestamp. ok is false when the value
// is absent, null or "" (not a problem) or unreadable (a BadTimestamp).
func (m *recMeta) readTime(tok []byte) (time.Time, bool) {
	if !isPresent(tok) || string(tok) == `""` {
		return time.Time{}, false
	}
	// The JSON decoder of time.Time reads RFC 3339 straight from the token;
	// escaped or lenient spellings go the slow way.
	var t time.Time
	if err := t.UnmarshalJSON(tok); err == nil {
		return t.UTC(), true
	}
	s, ok := decodeString(tok)
	if ok && s == "" {
		return time.Time{}, false
	}
	if ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC(), true
		}
	}
	m.badTimestamp++
	return time.Time{}, false
}

// markTime returns t, or fallback when t is unknown, and never the zero time,
// because a zero DeletedAt/SuspendedAt means "not deleted/suspended".
func markTime(t, fallback time.Time) time.Time {
	if t.IsZero() {
		t = fallback
	}
	if t.IsZero() {
		t = time.Unix(0, 0).UTC()
	}
	return t
}

// readCreator reads the createdByUser snapshot. Its string fields share one
// allocation. A present value that is not an object is a BadField problem.
func (m *recMeta) readCreator(tok []byte, sc *scratch) (*Creator, bool) {
	if !isPresent(tok) {
		return nil, true
	}
	it, ok := newObjectIter(tok)
	if !ok {
		m.badField++
		return nil, true
	}
	var (
		bounds     [6][2]int
		set        [6]bool
		onBehalfOf bool
	)
	buf := sc.cbuf[:0]
	for {
		key, val, _, _, more := it.next()
		if !more {
			break
		}
		i := creatorField(key)
		if i == creatorOnBehalfOf {
			onBehalfOf = string(val) == "true"
			continue
		}
		if i < 0 {
			continue
		}
		start := len(buf)
		if buf, ok = appendString(buf, val); !ok {
			continue // non-string snapshot fields read as empty
		}
		bounds[i] = [2]int{start, len(buf)}
		set[i] = true
	}
	sc.cbuf = buf
	all := string(buf)
	part := func(i int) string { return all[bounds[i][0]:bounds[i][1]] }
	c := &Creator{
		UserID:           part(0),
		Username:         part(1),
		Name:             part(2),
		Email:            part(3),
		OrganizationID:   part(4),
		OrganizationName: part(5),
		OnBehalfOf:       onBehalfOf,
	}
	return c, !set[2]
}

// creatorOnBehalfOf is creatorField's answer for the on_behalf_of key.
const creatorOnBehalfOf = 6

// creatorField maps a snapshot key token to its field index, -1 if unknown.
func creatorField(key []byte) int {
	switch string(keyText(key)) {
	case "user_id":
		return 0
	case "username":
		return 1
	case "name":
		return 2
	case "email":
		return 3
	case "organization_id":
		return 4
	case "organization_name":
		return 5
	case "on_behalf_of":
		return creatorOnBehalfOf
	}
	return -1
}

// classifyKey maps a top-level key token to the key the domain reads.
func classifyKey(key []byte) keyKind {
	switch string(keyText(key)) {
	case cdType:
		return keyType
	case cdCreatedBy:
		return keyCreatedBy
	case cdCreatedByUser:
		return keyCreatedByUser
	case cdCreatedAt:
		return keyCreatedAt
	case cdUpdatedAt:
		return keyUpdatedAt
	case cdSuspendedAt:
		return keySuspendedAt
	case cdDeletedAt:
		return keyDeletedAt
	case cdRebranding:
		return keyRebranding
	case cdPromotedFrom:
		return keyPromotedFrom
	}
	return keyOther
}

// wireCustomData is the `custom_data` served for the record: the original
// bytes when nothing is removed, else the kept members re-joined (their text
// untouched). Without a readable object it is {}.
func wireCustomData(data []byte, ok bool, spans []span, distributor bool) json.RawMessage {
	if !ok {
		return json.RawMessage{'{', '}'}
	}
	drop := func(s span) bool {
		return s.kind == keyCreatedByUser || (distributor && s.kind == keyPromotedFrom)
	}
	size, dropped := 2, false
	for _, s := range spans {
		if drop(s) {
			dropped = true
			continue
		}
		size += s.end - s.start + 1
	}
	if !dropped {
		return bytes.Clone(data)
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	for _, s := range spans {
		if drop(s) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, data[s.start:s.end]...)
	}
	return append(out, '}')
}

// appendSearchValue appends one value's search text and its NUL terminator:
// a string's decoded text, any other value's JSON text (the upstream's
// jsonb_each_text), nothing for null, lower-cased.
func appendSearchValue(blob, val []byte) []byte {
	switch {
	case string(val) == "null":
		return blob
	case len(val) > 0 && val[0] == '"':
		inner := val[1 : len(val)-1]
		if bytes.IndexByte(inner, '\\') < 0 {
			blob = appendLower(blob, inner)
		} else {
			s, _ := decodeString(val)
			blob = appendLower(blob, s)
		}
	default:
		blob = appendLower(blob, val)
	}
	return append(blob, 0)
}

// appendLower appends s lower-cased exactly as strings.ToLower would (invalid
// UTF-8 becomes U+FFFD), without allocating a string per part.
func appendLower[S ~string | ~[]byte](dst []byte, s S) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
		i += size
	}
	return dst
}
