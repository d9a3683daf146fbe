package hierarchy

import (
	"crypto/sha1"
	"encoding/hex"
)

// UUID is a 16-byte RFC 9562 UUID. The proxy needs one because the upstream
// wire shape has an `id` (a Postgres UUID there) next to `logto_id`, and this
// service has no database to mint one: it derives it instead (see OrgUUID).
type UUID [16]byte

// String formats u in the canonical 8-4-4-4-12 lower-case hex form that the
// upstream emits for its `id` fields.
func (u UUID) String() string {
	return string(u.AppendText(make([]byte, 0, 36)))
}

// AppendText appends the canonical form of u to b, so that encoders can write
// the id without an intermediate string (encoding.TextAppender).
func (u UUID) AppendText(b []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:36], u[10:16])
	return append(b, buf[:]...)
}

// MarshalText makes a UUID encode as its canonical string in JSON and other
// text encodings.
func (u UUID) MarshalText() ([]byte, error) {
	return u.AppendText(nil), nil
}

// NewUUIDv5 is RFC 9562 §5.5: the SHA-1 name-based UUID of name under
// namespace. It is exported so that other adapters (users, for example) can
// derive their own stable ids under their own namespace the same way.
func NewUUIDv5(namespace UUID, name string) UUID {
	var buf [16 + 64]byte // ids fit: hashing them needs no allocation
	sum := sha1.Sum(append(append(buf[:0], namespace[:]...), name...))

	var u UUID
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u
}

// OrgNamespace is the fixed namespace under which organization ids are
// derived: 4a600b32-c03e-56d8-b88a-ff5756fa9be1, which is itself
// NewUUIDv5(NamespaceURL(), "https://github.com/logto-proxy/logto-proxy/organization")
// (a test pins both). It must never change: every replica, every snapshot and
// every client that stored an `id` depends on it.
func OrgNamespace() UUID {
	return UUID{
		0x4a, 0x60, 0x0b, 0x32, 0xc0, 0x3e, 0x56, 0xd8,
		0xb8, 0x8a, 0xff, 0x57, 0x56, 0xfa, 0x9b, 0xe1,
	}
}

// NamespaceURL is the RFC 9562 predefined namespace for URLs
// (6ba7b811-9dad-11d1-80b4-00c04fd430c8), from which OrgNamespace is derived.
func NamespaceURL() UUID {
	return UUID{
		0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
		0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
	}
}

// OrgUUID is the stable `id` of the organization whose Logto id is logtoID:
// UUIDv5 under OrgNamespace. The same Logto id gives the same UUID on every
// replica and across restarts, with no shared state.
func OrgUUID(logtoID string) UUID {
	return NewUUIDv5(OrgNamespace(), logtoID)
}
