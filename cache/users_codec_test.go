package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"
)

func newTestUserCodec(t testing.TB) *userCodec {
	t.Helper()
	c, err := newUserCodec()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

func TestUsersSnapshotRoundTrip(t *testing.T) {
	c := newTestUserCodec(t)
	builtAt := time.Date(2025, 6, 1, 12, 30, 45, 123456789, time.UTC)
	orgs := []string{"owner0000000", "d00000000001", "r00000000002", "c00000000003"}
	for _, n := range []int{0, 1, 2, 1000} {
		users := GenUsers(orgs, orgs[0], n, uint64(n))
		blob, err := c.encode(42, builtAt, users)
		if err != nil {
			t.Fatalf("n=%d: encode: %v", n, err)
		}
		got, err := c.decode(blob)
		if err != nil {
			t.Fatalf("n=%d: decode: %v", n, err)
		}
		if got.generation != 42 || !got.builtAt.Equal(builtAt) {
			t.Fatalf("n=%d: generation %d built %v", n, got.generation, got.builtAt)
		}
		if len(got.records) != n {
			t.Fatalf("n=%d: decoded %d records", n, len(got.records))
		}
		for i := range users {
			if !reflect.DeepEqual(got.records[i], users[i]) {
				t.Fatalf("n=%d: record %d\n got %+v\nwant %+v", n, i, got.records[i], users[i])
			}
		}
	}
}

func TestUsersSnapshotEdgeCases(t *testing.T) {
	c := newTestUserCodec(t)
	empty := ""
	users := []UserRecord{
		{ID: "a"}, // everything else zero, null or absent
		{ID: "b", Phone: &empty, Name: "naïve \x00 \u2028", CustomData: []byte(`{"k":[1,2,{"x":null}]}`),
			Roles: []RoleRef{{ID: "r", Name: ""}}, HomeOrgID: "o", HomeSource: HomeMembership,
			HomeCheckedAt: time.Unix(0, 1).UTC(), CreatedAt: time.Unix(-5, 999999999).UTC()},
	}
	blob, err := c.encode(1, time.Unix(0, 0), users)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.records, users) {
		t.Fatalf("got %+v\nwant %+v", got.records, users)
	}
	// Appending to a decoded record's custom data never reaches the next.
	got.records[1].CustomData = append(got.records[1].CustomData[:1], "garbage"...)
	if again, _ := c.decode(blob); string(again.records[1].CustomData) != `{"k":[1,2,{"x":null}]}` {
		t.Fatal("a fresh decode was affected by an earlier one")
	}
}

func TestUsersSnapshotUnknownFormat(t *testing.T) {
	c := newTestUserCodec(t)
	blob, err := c.encode(7, time.Now(), GenUsers([]string{"o1"}, "", 10, 1))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(b []byte){
		"magic":       func(b []byte) { copy(b, snapshotMagic) }, // a hierarchy snapshot is not a users one
		"version":     func(b []byte) { binary.BigEndian.PutUint16(b[4:], usersFormat+1) },
		"compression": func(b []byte) { binary.BigEndian.PutUint16(b[6:], 9) },
	}
	for name, mutate := range cases {
		b := bytes.Clone(blob)
		mutate(b)
		if _, err := c.decode(b); !errors.Is(err, errUnknownFormat) {
			t.Errorf("%s changed: err = %v, want errUnknownFormat", name, err)
		}
	}
}

func TestUsersSnapshotCorrupt(t *testing.T) {
	c := newTestUserCodec(t)
	blob, err := c.encode(7, time.Now(), GenUsers([]string{"o1", "o2"}, "o1", 40, 2))
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
		"count too small": func(b []byte) { binary.BigEndian.PutUint32(b[24:], 39) },
		"body length":     func(b []byte) { binary.BigEndian.PutUint32(b[28:], binary.BigEndian.Uint32(b[28:])-1) },
	}
	for name, mutate := range cases {
		b := bytes.Clone(blob)
		mutate(b)
		if _, err := c.decode(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
	// Bodies that decompress but do not parse.
	one := appendUser(nil, &UserRecord{ID: "x"})
	bodies := map[string][]byte{
		"unknown flag":        withByte(one, 7, 0x80),
		"unknown home source": withByte(one, 8, byte(numHomeSources)),
		"roles overrun":       append(bytes.Clone(one[:len(one)-2]), 200, 0),
		"trailing bytes":      append(bytes.Clone(one), 0),
	}
	for name, body := range bodies {
		b := putSnapshotHeader(usersMagic, usersFormat, 1, time.Now(), 1, len(body))
		b = c.enc.EncodeAll(body, b)
		if _, err := c.decode(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

func withByte(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

func FuzzUsersSnapshotDecode(f *testing.F) {
	c := newTestUserCodec(f)
	for _, n := range []int{0, 1, 5} {
		blob, err := c.encode(uint64(n), time.Unix(int64(n), 0), GenUsers([]string{"o1", "o2"}, "o1", n, uint64(n)))
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
		again, err := c.encode(got.generation, got.builtAt, got.records)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.decode(again)
		if err != nil || !reflect.DeepEqual(back.records, got.records) {
			t.Fatalf("round trip of a decoded snapshot failed: %v", err)
		}
	})
}
