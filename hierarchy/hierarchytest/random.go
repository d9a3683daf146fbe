// Package hierarchytest generates realistic random organization records for
// tests and benchmarks of the packages that build hierarchy Trees (the
// domain itself, the cache, the HTTP layer, the Logto simulator's seed). The
// records look like what the upstream backend writes to Logto, and can be
// salted with every kind of bad data the domain must survive.
package hierarchytest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/logto-proxy/logto-proxy/hierarchy"
)

// Shape describes the tree to generate. Counts per parent vary uniformly
// around the given means (from half to one and a half times), so the total
// is about Distributors × (1 + ResellersPerDistributor × (1 +
// CustomersPerReseller) + DirectCustomersPerDistributor), plus the Owner.
// Fractions are probabilities per organization, in [0, 1].
type Shape struct {
	Distributors                  int
	ResellersPerDistributor       int
	CustomersPerReseller          int
	DirectCustomersPerDistributor int

	// State: soft-deleted, directly suspended, rebranding enabled.
	Deleted, Suspended, Rebranded float64

	// Bad data.
	Orphans       float64 // createdBy names no organization
	WrongLevel    float64 // createdBy names an organization of the wrong level
	UnknownType   float64 // type missing or not a level
	Malformed     float64 // customData is not a JSON object
	Duplicates    float64 // a second record with the same id
	BadTimestamps float64 // createdAt/updatedAt not RFC 3339
	Cycles        int     // pairs of customers naming each other
}

// Large is the benchmark shape: about 100,000 clean organizations (100
// distributors × 10 resellers × ~98 customers, plus direct customers), a few
// percent of them deleted, suspended or rebranded.
func Large() Shape {
	return Shape{
		Distributors:                  100,
		ResellersPerDistributor:       10,
		CustomersPerReseller:          98,
		DirectCustomersPerDistributor: 20,
		Deleted:                       0.02,
		Suspended:                     0.03,
		Rebranded:                     0.05,
	}
}

// Messy is a small tree with every kind of state and bad data, for property
// tests: scale multiplies the number of organizations (scale 1 is ~100).
func Messy(scale int) Shape {
	return Shape{
		Distributors:                  2 * scale,
		ResellersPerDistributor:       3,
		CustomersPerReseller:          10,
		DirectCustomersPerDistributor: 3,
		Deleted:                       0.12,
		Suspended:                     0.15,
		Rebranded:                     0.15,
		Orphans:                       0.04,
		WrongLevel:                    0.04,
		UnknownType:                   0.04,
		Malformed:                     0.03,
		Duplicates:                    0.04,
		BadTimestamps:                 0.03,
		Cycles:                        scale,
	}
}

// OwnerName is the name of the generated Owner organization (no type).
const OwnerName = "Owner"

// RandomRecords generates the records of a random tree of the given shape,
// the Owner first. The same seed and shape always give the same records.
func RandomRecords(seed uint64, shape Shape) []hierarchy.Record {
	g := &gen{
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		used: make(map[string]bool),
		base: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		w:    newWords(),
	}
	return g.records(shape)
}

// gen holds the state of one generation.
type gen struct {
	rng  *rand.Rand
	used map[string]bool
	base time.Time
	w    words
	recs []hierarchy.Record
	data []customData // parallel to recs
	// byType collects generated ids per level, for wrong-level links.
	byType map[string][]int
}

// customData is the customData the upstream writes, in its key names.
type customData struct {
	Type          string          `json:"type,omitempty"`
	CreatedBy     string          `json:"createdBy,omitempty"`
	CreatedAt     string          `json:"createdAt,omitempty"`
	UpdatedAt     string          `json:"updatedAt,omitempty"`
	UpdatedBy     string          `json:"updatedBy,omitempty"`
	VAT           string          `json:"vat,omitempty"`
	Address       string          `json:"address,omitempty"`
	City          string          `json:"city,omitempty"`
	MainContact   string          `json:"main_contact,omitempty"`
	Email         string          `json:"email,omitempty"`
	Phone         string          `json:"phone,omitempty"`
	Language      string          `json:"language,omitempty"`
	Notes         string          `json:"notes,omitempty"`
	Employees     int             `json:"employees,omitempty"`
	CreatedByUser *creator        `json:"createdByUser,omitempty"`
	PromotedFrom  json.RawMessage `json:"promotedFrom,omitempty"`
	SuspendedAt   string          `json:"suspendedAt,omitempty"`
	DeletedAt     string          `json:"deletedAt,omitempty"`
	Rebranding    bool            `json:"rebrandingEnabled,omitempty"`
}

// creator is the createdByUser snapshot.
type creator struct {
	UserID           string `json:"user_id"`
	Username         string `json:"username"`
	Name             string `json:"name"`
	Email            string `json:"email"`
	OrganizationID   string `json:"organization_id"`
	OrganizationName string `json:"organization_name"`
	OnBehalfOf       bool   `json:"on_behalf_of,omitempty"`
}

// records generates the whole tree, then salts it with bad data.
func (g *gen) records(s Shape) []hierarchy.Record {
	g.byType = make(map[string][]int)
	owner := g.add("", "", OwnerName, s)
	creators := g.creators(8, owner)
	for range s.Distributors {
		d := g.add("distributor", g.recs[owner].ID, g.company(), s)
		g.attribute(d, creators[g.rng.IntN(len(creators))])
		if g.rng.IntN(10) == 0 {
			g.data[d].PromotedFrom = json.RawMessage(fmt.Sprintf(`{"level":"reseller","at":%q}`, g.stamp(0)))
		}
		staff := g.creators(2, d)
		for range g.around(s.DirectCustomersPerDistributor) {
			c := g.add("customer", g.recs[d].ID, g.company(), s)
			g.attribute(c, staff[g.rng.IntN(len(staff))])
		}
		for range g.around(s.ResellersPerDistributor) {
			r := g.add("reseller", g.recs[d].ID, g.company(), s)
			g.attribute(r, staff[g.rng.IntN(len(staff))])
			rstaff := g.creators(2, r)
			for range g.around(s.CustomersPerReseller) {
				c := g.add("customer", g.recs[r].ID, g.company(), s)
				g.attribute(c, rstaff[g.rng.IntN(len(rstaff))])
			}
		}
	}
	g.salt(s)
	return g.encode(s)
}

// around returns a count drawn uniformly from [mean/2, 3·mean/2].
func (g *gen) around(mean int) int {
	if mean <= 0 {
		return 0
	}
	lo := mean / 2
	return lo + g.rng.IntN(mean+1)
}

// add appends one organization and returns its index.
func (g *gen) add(typ, parent, name string, s Shape) int {
	created := g.rng.IntN(600 * 24)
	cd := customData{
		Type:        typ,
		CreatedBy:   parent,
		CreatedAt:   g.stamp(created),
		VAT:         fmt.Sprintf("IT%011d", g.rng.Int64N(1e11)),
		Address:     fmt.Sprintf("Via %s %d", pick(g.rng, g.w.streets), 1+g.rng.IntN(200)),
		City:        pick(g.rng, g.w.cities),
		MainContact: pick(g.rng, g.w.firstNames) + " " + pick(g.rng, g.w.lastNames),
		Email:       fmt.Sprintf("info%d@example.com", g.rng.IntN(1e6)),
		Phone:       fmt.Sprintf("+39 0%d %d", 100+g.rng.IntN(900), 100000+g.rng.IntN(900000)),
		Language:    pick(g.rng, []string{"it", "en", "de", "fr"}),
	}
	if typ == "" {
		cd = customData{}
	}
	if g.rng.IntN(3) == 0 {
		cd.UpdatedAt = g.stamp(created + g.rng.IntN(24*30))
		cd.UpdatedBy = parent
	}
	if g.rng.IntN(4) == 0 {
		cd.Notes = pick(g.rng, g.w.notes)
	}
	if g.rng.IntN(5) == 0 {
		cd.Employees = 1 + g.rng.IntN(500)
	}
	if typ != "" {
		if g.chance(s.Deleted) {
			cd.DeletedAt = g.stamp(created + 24*60)
		}
		if g.chance(s.Suspended) {
			cd.SuspendedAt = g.stamp(created + 24*30)
		}
		cd.Rebranding = g.chance(s.Rebranded)
	}
	g.recs = append(g.recs, hierarchy.Record{
		ID:          g.id(),
		Name:        name,
		Description: pick(g.rng, g.w.descriptions),
		CreatedAt:   g.base.Add(time.Duration(created) * time.Hour),
	})
	g.data = append(g.data, cd)
	g.byType[typ] = append(g.byType[typ], len(g.recs)-1)
	return len(g.recs) - 1
}

// creators makes n creator snapshots of users of organization org.
func (g *gen) creators(n, org int) []creator {
	out := make([]creator, n)
	for i := range out {
		first, last := pick(g.rng, g.w.firstNames), pick(g.rng, g.w.lastNames)
		out[i] = creator{
			UserID:           g.id(),
			Username:         fmt.Sprintf("%s.%s%d", first, last, g.rng.IntN(100)),
			Name:             first + " " + last,
			Email:            fmt.Sprintf("%s.%s@example.com", first, last),
			OrganizationID:   g.recs[org].ID,
			OrganizationName: g.recs[org].Name,
		}
	}
	return out
}

// attribute stores c as the creator snapshot of organization i (sometimes
// none, sometimes on behalf of another organization).
func (g *gen) attribute(i int, c creator) {
	switch g.rng.IntN(20) {
	case 0:
		return
	case 1:
		c.OnBehalfOf = true
	}
	g.data[i].CreatedByUser = &c
}

// salt applies the bad-data fractions of s.
func (g *gen) salt(s Shape) {
	n := len(g.recs)
	customers := g.byType["customer"]
	for i := 1; i < n; i++ { // never the Owner
		cd := &g.data[i]
		switch {
		case g.chance(s.Orphans):
			cd.CreatedBy = g.id() // names nothing
		case g.chance(s.WrongLevel):
			others := g.byType[pick(g.rng, []string{"", "distributor", "reseller", "customer"})]
			if len(others) > 0 {
				cd.CreatedBy = g.recs[others[g.rng.IntN(len(others))]].ID
			}
		}
		if g.chance(s.UnknownType) {
			cd.Type = pick(g.rng, []string{"", "partner", "Owner", "DISTRIBUTOR"})
		}
		if g.chance(s.BadTimestamps) {
			cd.CreatedAt = "yesterday"
			cd.UpdatedAt = "2024-13-45T99:00:00Z"
		}
	}
	for range s.Cycles {
		if len(customers) < 2 {
			break
		}
		a, b := customers[g.rng.IntN(len(customers))], customers[g.rng.IntN(len(customers))]
		g.data[a].CreatedBy, g.data[b].CreatedBy = g.recs[b].ID, g.recs[a].ID
	}
}

// encode marshals the customData and adds malformed data and duplicates.
func (g *gen) encode(s Shape) []hierarchy.Record {
	out := make([]hierarchy.Record, 0, len(g.recs)+len(g.recs)/10)
	for i, r := range g.recs {
		raw, err := json.Marshal(g.data[i])
		if err != nil {
			panic(fmt.Sprintf("hierarchytest: marshal custom data: %v", err)) // a bug in this package
		}
		if i > 0 && g.chance(s.Malformed) {
			raw = pick(g.rng, [][]byte{raw[:len(raw)/2], []byte(`[1,2]`), []byte(`"text"`), []byte(`{"type":}`)})
		}
		r.CustomData = raw
		out = append(out, r)
		if i > 0 && g.chance(s.Duplicates) {
			dup := r
			dup.Name = r.Name + " (copy)"
			dup.CreatedAt = r.CreatedAt.Add(time.Hour)
			out = append(out, dup)
		}
	}
	return out
}

// chance reports true with probability p.
func (g *gen) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

// id returns a fresh Logto-style id: 12 characters of [0-9a-z].
func (g *gen) id() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	for {
		var b [12]byte
		for i := range b {
			b[i] = alphabet[g.rng.IntN(len(alphabet))]
		}
		if id := string(b[:]); !g.used[id] {
			g.used[id] = true
			return id
		}
	}
}

// stamp formats the base time plus hours as RFC 3339.
func (g *gen) stamp(hours int) string {
	return g.base.Add(time.Duration(hours) * time.Hour).Format(time.RFC3339)
}

// company returns a company-like name.
func (g *gen) company() string {
	return fmt.Sprintf("%s %s %s", pick(g.rng, g.w.prefixes), pick(g.rng, g.w.lastNames), pick(g.rng, g.w.suffixes))
}

// pick returns a random element of list.
func pick[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

// words are the vocabularies names are drawn from. They live in each
// generation rather than in package variables so the package has no mutable
// state.
type words struct {
	prefixes, suffixes, firstNames, lastNames []string
	streets, cities, descriptions, notes      []string
}

// newWords returns the vocabularies.
func newWords() words {
	return words{
		prefixes:     []string{"Acme", "Nova", "Alpha", "Delta", "Omega", "Blue", "Green", "Zeta", "Ital", "Euro", "Tecno", "Info"},
		suffixes:     []string{"Srl", "SpA", "GmbH", "Ltd", "Sas", "Snc", "Inc", "Group"},
		firstNames:   []string{"Mario", "Luca", "Giulia", "Anna", "Marco", "Sara", "Paolo", "Elena", "Jörg", "Zoë", "Ålex", "Chiara"},
		lastNames:    []string{"Rossi", "Bianchi", "Verdi", "Esposito", "Ricci", "Romano", "Colombo", "Bruno", "Gallo", "Conti", "Müller", "Ñuñez"},
		streets:      []string{"Roma", "Milano", "Garibaldi", "Mazzini", "Cavour", "Dante", "Verdi", "Marconi"},
		cities:       []string{"Pesaro", "Milano", "Roma", "Torino", "Bologna", "Napoli", "Firenze", "Berlin", "Paris"},
		descriptions: []string{"", "Managed services", "Cloud PBX customer", "Firewall reseller", "Hosting partner", "VoIP and security", "Small office"},
		notes:        []string{"VIP account", "Pays yearly", "Migrating from legacy", "Contact by email only", "Special pricing"},
	}
}
