package cache

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// GenRecords returns n organization records shaped like Logto's: one Owner,
// then distributors, resellers and customers (about 1:10:100), each with a
// parent in the level above and customData of realistic size. The same
// seed gives the same records. It is exported (in tests only) so that the
// external test package uses it too.
func GenRecords(n int, seed uint64) []hierarchy.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	records := make([]hierarchy.Record, 0, n)
	if n == 0 {
		return records
	}
	records = append(records, hierarchy.Record{ID: "owner0000000", Name: "Owner", CreatedAt: base})

	companyWords := []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent"}
	var distributors, resellers []string
	for i := 1; i < n; i++ {
		kind, parent := "customer", ""
		switch {
		case len(distributors) == 0 || i%111 == 1:
			kind, parent = "distributor", records[0].ID
		case len(resellers) == 0 || i%11 == 2:
			kind, parent = "reseller", distributors[rng.IntN(len(distributors))]
		default:
			parent = resellers[rng.IntN(len(resellers))]
			if rng.IntN(20) == 0 {
				parent = distributors[rng.IntN(len(distributors))]
			}
		}
		id := fmt.Sprintf("%c%011d", kind[0], i)
		switch kind {
		case "distributor":
			distributors = append(distributors, id)
		case "reseller":
			resellers = append(resellers, id)
		}
		created := base.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Millisecond)
		records = append(records, hierarchy.Record{
			ID:          id,
			Name:        fmt.Sprintf("%s %s %d", kind, companyWords[rng.IntN(len(companyWords))], i),
			Description: description(rng, i),
			CustomData:  customData(rng, kind, parent, created),
			CreatedAt:   created,
		})
	}
	return records
}

func description(rng *rand.Rand, i int) string {
	if rng.IntN(3) == 0 {
		return ""
	}
	return fmt.Sprintf("Organization number %d, managed from the dashboard", i)
}

func customData(rng *rand.Rand, kind, parent string, created time.Time) json.RawMessage {
	data := map[string]any{
		"type":      kind,
		"createdBy": parent,
		"createdAt": created.Format(time.RFC3339),
		"updatedAt": created.Add(time.Hour).Format(time.RFC3339),
		"createdByUser": map[string]any{
			"user_id":           fmt.Sprintf("u%011d", rng.IntN(1e6)),
			"username":          "admin",
			"name":              "Admin User",
			"email":             "admin@example.com",
			"organization_id":   parent,
			"organization_name": "Parent Org",
		},
		"vat":          fmt.Sprintf("IT%011d", rng.IntN(1e11)),
		"address":      fmt.Sprintf("Via Roma %d", rng.IntN(300)),
		"city":         "Pesaro",
		"main_contact": "Mario Rossi",
		"email":        "info@example.com",
		"phone":        fmt.Sprintf("+39 0721 %06d", rng.IntN(1e6)),
		"language":     "it",
	}
	if rng.IntN(50) == 0 {
		data["suspendedAt"] = created.Add(48 * time.Hour).Format(time.RFC3339)
	}
	if rng.IntN(10) == 0 {
		data["rebrandingEnabled"] = true
	}
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return raw
}
