package cache

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Embedded is an in-process Redis (miniredis) serving RESP on a loopback
// port. It exists so that `go test` and `-demo` need nothing but Go, while
// the code under test still talks to Redis through go-redis exactly as in
// production: one code path for both. It is not for production: it keeps
// everything in memory and does not persist.
type Embedded struct {
	srv *miniredis.Miniredis
}

// StartEmbedded starts an embedded Redis on a free loopback port. Keys
// expire in real time, as with a real server.
func StartEmbedded() (*Embedded, error) {
	srv := miniredis.NewMiniRedis()
	srv.ClockTTL(true)
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("cache: start embedded redis: %w", err)
	}
	return &Embedded{srv: srv}, nil
}

// Addr is the server's host:port.
func (e *Embedded) Addr() string { return e.srv.Addr() }

// URL is the server's address as a REDIS_URL.
func (e *Embedded) URL() string { return "redis://" + e.srv.Addr() }

// Client returns a new client of the server, configured as production
// clients should be (context deadlines bound socket I/O). The caller closes
// it.
func (e *Embedded) Client() redis.UniversalClient {
	return redis.NewClient(&redis.Options{Addr: e.srv.Addr(), ContextTimeoutEnabled: true})
}

// Close stops the server; its data is lost.
func (e *Embedded) Close() { e.srv.Close() }
