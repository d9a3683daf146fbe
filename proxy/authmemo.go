package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Verifying a bearer token is most of what a cached read costs: an HS256
// session token takes ~30 µs to parse, check and decode, a service token's
// signature far more, and the same few tokens arrive again and again (a
// dashboard tab, a service polling). So the authenticator remembers what
// each verified token resolved to, keyed by the token's SHA-256, until the
// token expires: a known token then costs a hash and a map lookup. Only the
// verification is remembered: a session token's revocation is checked on
// every request (the session store answers that from memory too).

// maxUnexpiringMemo bounds how long a token without `exp` is remembered
// (upstream session tokens always carry one; this only caps the odd case).
const maxUnexpiringMemo = 10 * time.Minute

// defaultMemoSize bounds how many verified tokens are remembered.
const defaultMemoSize = 10_000

// verifiedCaller is what a verified token resolved to.
type verifiedCaller struct {
	// caller is shared by every request of the token and must not be
	// modified.
	caller  *Caller
	expires time.Time
}

// verifiedCallers remembers verified tokens until they expire. It is
// bounded: when full, expired entries are dropped, then arbitrary ones (a
// dropped token is simply verified again). A nil *verifiedCallers
// remembers nothing. Safe for concurrent use.
type verifiedCallers struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]verifiedCaller
}

func newVerifiedCallers(max int) *verifiedCallers {
	return &verifiedCallers{max: max, entries: make(map[[sha256.Size]byte]verifiedCaller)}
}

// get returns the remembered resolution of the token whose SHA-256 is sum,
// if it has not expired by now.
func (m *verifiedCallers) get(sum [sha256.Size]byte, now time.Time) (verifiedCaller, bool) {
	if m == nil {
		return verifiedCaller{}, false
	}
	m.mu.RLock()
	v, ok := m.entries[sum]
	m.mu.RUnlock()
	if !ok || !now.Before(v.expires) {
		return verifiedCaller{}, false
	}
	return v, true
}

// put remembers a verified token's resolution until it expires.
func (m *verifiedCallers) put(sum [sha256.Size]byte, v verifiedCaller, now time.Time) {
	if m == nil || !now.Before(v.expires) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) >= m.max {
		m.shrink(now)
	}
	m.entries[sum] = v
}

// shrink drops expired entries, then arbitrary ones down to 90% of max.
func (m *verifiedCallers) shrink(now time.Time) {
	for k, v := range m.entries {
		if !now.Before(v.expires) {
			delete(m.entries, k)
		}
	}
	for k := range m.entries {
		if len(m.entries) < m.max*9/10 || len(m.entries) == 0 {
			break
		}
		delete(m.entries, k)
	}
}

// remember builds the entry of a verified caller, named by its token's
// digest, valid until expires (capped for tokens without exp).
func remember(c *Caller, sum [sha256.Size]byte, expires *time.Time, now time.Time) verifiedCaller {
	c.TokenDigest = hex.EncodeToString(sum[:])
	until := now.Add(maxUnexpiringMemo)
	if expires != nil {
		until = *expires
	}
	return verifiedCaller{caller: c, expires: until}
}
