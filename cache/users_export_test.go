package cache

import (
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// This file exposes the users index to the external test package.

// BindUsers indexes records and binds them to tree, as the view does.
func BindUsers(records []UserRecord, tree *hierarchy.Tree) *Users {
	return bindUsers(newUserIndex(records), tree)
}

// UserIndex is the users index, for benchmarks that time its parts.
type UserIndex = userIndex

// NewUserIndex indexes records.
func NewUserIndex(records []UserRecord) *UserIndex { return newUserIndex(records) }

// BindIndex binds an index to tree.
func BindIndex(ix *UserIndex, tree *hierarchy.Tree) *Users { return bindUsers(ix, tree) }

// UsersCodec round-trips users snapshots, for benchmarks.
type UsersCodec struct{ c *userCodec }

func NewUsersCodec() (*UsersCodec, error) {
	c, err := newUserCodec()
	return &UsersCodec{c}, err
}

func (u *UsersCodec) Encode(records []UserRecord) ([]byte, error) {
	return u.c.encode(1, time.Now(), records)
}

func (u *UsersCodec) Decode(blob []byte) (int, error) {
	d, err := u.c.decode(blob)
	return len(d.records), err
}

func (u *UsersCodec) Close() { u.c.close() }
