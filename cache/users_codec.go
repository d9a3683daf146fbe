package cache

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// The users snapshot format: the 32-byte header of the hierarchy snapshots
// (see the package documentation) with its own magic, then the
// zstd-compressed body, one record after another:
//
//	strings (uvarint length + bytes): ID, Username, Email, Name, HomeOrgID, CreatedByOrgID
//	flags (byte): 1 phone present, 2 suspended, 4 creator snapshot present
//	home source (byte)
//	times (varint Unix seconds + uvarint nanoseconds): CreatedAt, UpdatedAt, LastSignInAt, HomeCheckedAt
//	phone (string), if present
//	roles: uvarint count, then ID and Name strings each
//	creator, if present: UserID, Username, Name, Email, OrganizationID,
//	    OrganizationName strings, then OnBehalfOf (byte 0 or 1)
//	custom data (uvarint length + bytes)
//
// A snapshot whose magic, version or compression this binary does not know
// is treated as absent, never as an error.
const (
	usersMagic  = "LPXU"
	usersFormat = 1

	// minUserRecordLen is the fewest body bytes a record takes: six empty
	// strings, two flag bytes, four times of two bytes, an empty role count
	// and an empty custom data length.
	minUserRecordLen = 6 + 2 + 8 + 1 + 1
)

// The flag bits of a stored user record.
const (
	userFlagPhone     = 1
	userFlagSuspended = 2
	userFlagCreator   = 4
	userFlagsAll      = userFlagPhone | userFlagSuspended | userFlagCreator
)

// userCodec encodes and decodes users snapshots.
type userCodec struct {
	zstdPair
}

func newUserCodec() (*userCodec, error) {
	z, err := newZstdPair()
	if err != nil {
		return nil, err
	}
	return &userCodec{zstdPair: z}, nil
}

// encode returns the stored form of records at generation gen.
func (c *userCodec) encode(gen uint64, builtAt time.Time, records []UserRecord) ([]byte, error) {
	body := encodeUsers(records)
	if len(body) > maxSnapshotBody || uint64(len(records)) > uint64(^uint32(0)) {
		return nil, fmt.Errorf("encode users snapshot: %d records, %d bytes: too large", len(records), len(body))
	}
	out := putSnapshotHeader(usersMagic, usersFormat, gen, builtAt, len(records), len(body))
	return c.enc.EncodeAll(body, out), nil
}

// header reads a stored users snapshot's header.
func (c *userCodec) header(blob []byte) (snapshotHeader, error) {
	return readHeader(blob, usersMagic, usersFormat, minUserRecordLen)
}

// decode parses a stored users snapshot; it never panics on bad input.
func (c *userCodec) decode(blob []byte) (snapshotData[UserRecord], error) {
	h, err := c.header(blob)
	if err != nil {
		return snapshotData[UserRecord]{}, err
	}
	body, err := c.decompress(blob, h)
	if err != nil {
		return snapshotData[UserRecord]{}, err
	}
	records, err := decodeUsers(body, h.count)
	if err != nil {
		return snapshotData[UserRecord]{}, err
	}
	return snapshotData[UserRecord]{generation: h.generation, builtAt: h.builtAt, records: records}, nil
}

func encodeUsers(records []UserRecord) []byte {
	var buf []byte
	for i := range records {
		buf = appendUser(buf, &records[i])
	}
	return buf
}

func appendUser(buf []byte, r *UserRecord) []byte {
	for _, s := range [...]string{r.ID, r.Username, r.Email, r.Name, r.HomeOrgID, r.CreatedByOrgID} {
		buf = appendString(buf, s)
	}
	var flags byte
	if r.Phone != nil {
		flags |= userFlagPhone
	}
	if r.Suspended {
		flags |= userFlagSuspended
	}
	if r.CreatedBy != nil {
		flags |= userFlagCreator
	}
	buf = append(buf, flags, byte(r.HomeSource))
	for _, t := range [...]time.Time{r.CreatedAt, r.UpdatedAt, r.LastSignInAt, r.HomeCheckedAt} {
		buf = binary.AppendVarint(buf, t.Unix())
		buf = binary.AppendUvarint(buf, uint64(t.Nanosecond()))
	}
	if r.Phone != nil {
		buf = appendString(buf, *r.Phone)
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Roles)))
	for _, role := range r.Roles {
		buf = appendString(buf, role.ID)
		buf = appendString(buf, role.Name)
	}
	if c := r.CreatedBy; c != nil {
		for _, s := range [...]string{c.UserID, c.Username, c.Name, c.Email, c.OrganizationID, c.OrganizationName} {
			buf = appendString(buf, s)
		}
		onBehalf := byte(0)
		if c.OnBehalfOf {
			onBehalf = 1
		}
		buf = append(buf, onBehalf)
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.CustomData)))
	return append(buf, r.CustomData...)
}

// decodeUsers is the inverse of encodeUsers. Strings are substrings of one
// copy of the body; CustomData slices share the body buffer, capped so
// that an append by a reader can never overwrite a neighbour.
func decodeUsers(body []byte, count int) ([]UserRecord, error) {
	r := newStringColumn(body)
	records := make([]UserRecord, count)
	for i := range records {
		if err := readUser(&r, &records[i]); err != nil {
			return nil, fmt.Errorf("%w: user record %d: %v", errCorrupt, i, err)
		}
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("%w: trailing user data", errCorrupt)
	}
	return records, nil
}

// readUser reads one record; a truncated record reads as zero values with
// r.err set, which is reported once at the end.
func readUser(r *stringColumn, u *UserRecord) error {
	for _, dst := range [...]*string{&u.ID, &u.Username, &u.Email, &u.Name, &u.HomeOrgID, &u.CreatedByOrgID} {
		*dst = r.next()
	}
	flags, source := r.byte(), r.byte()
	if flags&^userFlagsAll != 0 || source >= byte(numHomeSources) {
		return fmt.Errorf("unknown flags %#x or home source %d", flags, source)
	}
	u.Suspended, u.HomeSource = flags&userFlagSuspended != 0, HomeSource(source)
	for _, dst := range [...]*time.Time{&u.CreatedAt, &u.UpdatedAt, &u.LastSignInAt, &u.HomeCheckedAt} {
		sec, nsec := r.varint(), r.uvarint()
		if nsec >= uint64(time.Second) {
			return fmt.Errorf("nanoseconds out of range")
		}
		*dst = time.Unix(sec, int64(nsec)).UTC()
	}
	if flags&userFlagPhone != 0 {
		phone := r.next()
		u.Phone = &phone
	}
	// Each role takes at least two bytes, which bounds what a corrupt count
	// may allocate.
	if n := r.uvarint(); n > 0 && r.err == nil {
		if n > uint64(len(r.buf))/2 {
			return fmt.Errorf("%d roles cannot fit in %d bytes", n, len(r.buf))
		}
		u.Roles = make([]RoleRef, n)
		for j := range u.Roles {
			u.Roles[j] = RoleRef{ID: r.next(), Name: r.next()}
		}
	}
	if flags&userFlagCreator != 0 {
		c := &hierarchy.Creator{}
		for _, dst := range [...]*string{&c.UserID, &c.Username, &c.Name, &c.Email, &c.OrganizationID, &c.OrganizationName} {
			*dst = r.next()
		}
		switch r.byte() {
		case 0:
		case 1:
			c.OnBehalfOf = true
		default:
			return fmt.Errorf("bad on_behalf_of flag")
		}
		u.CreatedBy = c
	}
	if raw := r.bytes(); len(raw) > 0 {
		u.CustomData = json.RawMessage(raw[:len(raw):len(raw)])
	}
	if r.err != nil {
		return fmt.Errorf("truncated")
	}
	return nil
}

// byte reads one byte.
func (r *byteReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.buf) == 0 {
		r.err = errCorrupt
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}
