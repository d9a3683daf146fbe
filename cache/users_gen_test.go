package cache

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// TestRoles are the global roles GenUsers hands out, id → name.
var TestRoles = map[string]string{"role-admin": "Admin", "role-reader": "Reader", "role-support": "Support"}

// GenUsers returns n user records shaped like the upstream's Logto users,
// with homes drawn from orgIDs: mostly customData homes, some found by
// membership, some without a home, some in an organization no tree knows,
// and some in ownerID's organization; with every nullable field sometimes
// null, mixed-case names, tied creation times, suspended users, roles and
// both forms of customData.createdBy. The same seed gives the same records.
// It is exported (in tests only) for the external test package.
func GenUsers(orgIDs []string, ownerID string, n int, seed uint64) []UserRecord {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	first := []string{"Anna", "bruno", "Carla", "DARIO", "Elena", "franco", "Giulia", "", "Ugo", "zoe"}
	last := []string{"Rossi", "bianchi", "Verdi", "NERI", "Conti", "gallo"}
	roleIDs := []string{"role-admin", "role-reader", "role-support"}
	pick := func(ids []string) string { return ids[rng.IntN(len(ids))] }
	users := make([]UserRecord, n)
	for i := range users {
		u := &users[i]
		u.ID = fmt.Sprintf("u%011d", i)
		name := pick(first) + " " + pick(last)
		u.Name = name
		u.Username = fmt.Sprintf("user_%d", i)
		u.Email = fmt.Sprintf("%s.%d@Example.COM", pick(last), i)
		if rng.IntN(2) == 0 {
			phone := fmt.Sprintf("39%08d", i)
			u.Phone = &phone
		}
		// Minutes, so that many users share a creation time.
		u.CreatedAt = base.Add(time.Duration(rng.IntN(5000)) * time.Minute)
		u.UpdatedAt = u.CreatedAt.Add(time.Duration(rng.IntN(1000)) * time.Second)
		if rng.IntN(3) > 0 {
			u.LastSignInAt = u.UpdatedAt.Add(time.Duration(rng.IntN(1e6)) * time.Millisecond)
		}
		u.Suspended = rng.IntN(20) == 0
		switch k := rng.IntN(100); {
		case k < 80 && len(orgIDs) > 0:
			u.HomeOrgID, u.HomeSource = pick(orgIDs), HomeCustomData
		case k < 85 && len(orgIDs) > 0:
			u.HomeOrgID, u.HomeSource, u.HomeCheckedAt = pick(orgIDs), HomeMembership, base.Add(time.Duration(k)*time.Hour)
		case k < 90:
			u.HomeSource = HomeNone
		case k < 95:
			u.HomeOrgID, u.HomeSource = fmt.Sprintf("unknown%05d", rng.IntN(100)), HomeCustomData
		default:
			u.HomeOrgID, u.HomeSource = ownerID, HomeCustomData
		}
		for _, id := range roleIDs {
			if rng.IntN(3) == 0 {
				u.Roles = append(u.Roles, RoleRef{ID: id, Name: TestRoles[id]})
			}
		}
		switch rng.IntN(5) {
		case 0, 1:
			u.CreatedBy = &hierarchy.Creator{
				UserID: fmt.Sprintf("u%011d", rng.IntN(n)), Username: "creator", Name: pick(first) + " Creator",
				Email: "creator@example.com", OrganizationID: pickOr(rng, orgIDs, ""), OrganizationName: "Some Org",
				OnBehalfOf: rng.IntN(4) == 0,
			}
		case 2, 3:
			u.CreatedByOrgID = pickOr(rng, orgIDs, "nobody")
		}
		cd := map[string]any{"organizationId": u.HomeOrgID, "createdAt": u.CreatedAt.Format(time.RFC3339), "note": name}
		u.CustomData, _ = json.Marshal(cd)
	}
	return users
}

func pickOr(rng *rand.Rand, ids []string, def string) string {
	if len(ids) == 0 {
		return def
	}
	return ids[rng.IntN(len(ids))]
}
