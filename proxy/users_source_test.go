package proxy

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

const membershipRoute = "GET /api/users/{userId}/organizations"

// TestUserSourceBoundsMembershipLookups checks the home-organization rule
// for users whose customData names none: at most MembershipLookups lookups
// per rebuild, never-looked-up users first, then the oldest lookups, and
// every other user keeping what the previous rebuild found.
func TestUserSourceBoundsMembershipLookups(t *testing.T) {
	sim, err := logtotest.New(logtotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	orgA, err := sim.CreateOrganization(map[string]any{"name": "A"})
	if err != nil {
		t.Fatal(err)
	}
	orgB, err := sim.CreateOrganization(map[string]any{"name": "B"})
	if err != nil {
		t.Fatal(err)
	}
	// Five users without customData.organizationId: four members (of A
	// then B, or of A only), one member of nothing; and one user whose
	// customData names its home, which is never looked up.
	want := map[string]string{}
	for i, orgs := range [][]string{{orgA.ID, orgB.ID}, {orgB.ID}, {orgA.ID}, {orgB.ID, orgA.ID}, nil} {
		u, err := sim.CreateUser(map[string]any{"username": "member" + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		for _, org := range orgs {
			if err := sim.AddOrganizationMembers(org, u.ID); err != nil {
				t.Fatal(err)
			}
		}
		if len(orgs) > 0 {
			first, _ := sim.UserOrganizations(u.ID)
			want[u.ID] = first[0].ID // Logto's order decides which is first
		} else {
			want[u.ID] = ""
		}
	}
	if _, err := sim.CreateUser(map[string]any{"username": "homed", "customData": map[string]any{"organizationId": orgA.ID}}); err != nil {
		t.Fatal(err)
	}

	appID, secret := sim.M2MCredentials()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := logto.New(logto.Config{Endpoint: sim.URL(), AppID: appID, AppSecret: secret, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	src := UserSource(client, UserSourceConfig{MembershipLookups: 2, Logger: quiet, Now: func() time.Time { return now }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var prev []cache.UserRecord
	checkedAt := map[string]time.Time{}
	for round := 1; round <= 4; round++ {
		now = now.Add(time.Minute)
		sim.ResetCalls()
		recs, err := src(ctx, prev)
		if err != nil {
			t.Fatal(err)
		}
		if n := sim.Calls(membershipRoute); n != 2 {
			t.Fatalf("round %d: %d membership lookups, want 2", round, n)
		}
		var lookedUp []string
		for _, r := range recs {
			if r.Username == "homed" {
				if r.HomeOrgID != orgA.ID || r.HomeSource != cache.HomeCustomData || !r.HomeCheckedAt.IsZero() {
					t.Errorf("round %d: the homed user: %+v", round, r)
				}
				continue
			}
			if r.HomeCheckedAt.Equal(now) {
				lookedUp = append(lookedUp, r.ID)
			}
			if r.HomeCheckedAt.IsZero() {
				if r.HomeOrgID != "" || r.HomeSource != cache.HomeNone {
					t.Errorf("round %d: %s has a home without a lookup: %+v", round, r.Username, r)
				}
				continue
			}
			wantSource := cache.HomeMembership
			if want[r.ID] == "" {
				wantSource = cache.HomeNone
			}
			if r.HomeOrgID != want[r.ID] || r.HomeSource != wantSource {
				t.Errorf("round %d: %s's home is %q (%v), want %q", round, r.Username, r.HomeOrgID, r.HomeSource, want[r.ID])
			}
		}
		// Never-looked-up users go first, then the oldest lookups.
		var expect []string
		for _, r := range prev {
			if r.Username != "homed" {
				expect = append(expect, r.ID)
			}
		}
		if round == 1 {
			expect = nil
		} else {
			slices.SortFunc(expect, func(a, b string) int {
				return cmp.Or(checkedAt[a].Compare(checkedAt[b]), strings.Compare(a, b))
			})
			expect = expect[:2]
		}
		if round > 1 && !sameSet(lookedUp, expect) {
			t.Errorf("round %d looked up %v, want %v", round, lookedUp, expect)
		}
		if len(lookedUp) != 2 {
			t.Errorf("round %d: %d users carry this round's lookup time", round, len(lookedUp))
		}
		for _, id := range lookedUp {
			checkedAt[id] = now
		}
		prev = recs
	}
	if len(checkedAt) != 5 {
		t.Errorf("after 4 rounds of 2 lookups, %d of the 5 users were looked up", len(checkedAt))
	}

	none := UserSource(client, UserSourceConfig{MembershipLookups: -1, Logger: quiet})
	sim.ResetCalls()
	if _, err := none(ctx, nil); err != nil || sim.Calls(membershipRoute) != 0 {
		t.Errorf("lookups disabled: %d lookups, err %v", sim.Calls(membershipRoute), err)
	}
}
