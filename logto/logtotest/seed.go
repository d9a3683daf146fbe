package logtotest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// ProxyAPIIndicator is the resource indicator of logto-proxy's own API in the
// seeded tenants: the audience of service tokens.
const ProxyAPIIndicator = "https://logto-proxy.local/api"

// Organization role names of the upstream's template.
const (
	RoleOwner       = "Owner"
	RoleDistributor = "Distributor"
	RoleReseller    = "Reseller"
	RoleCustomer    = "Customer"
)

// Global user role names of the upstream.
const (
	RoleSuperAdmin = "Super Admin"
	RoleAdmin      = "Admin"
	RoleSupport    = "Support"
	RoleReader     = "Reader"
)

// serviceRoleName and serviceAppName name the M2M role and application that
// hold logto-proxy's read permissions.
const (
	serviceRoleName = "logto-proxy service"
	serviceAppName  = "logto-proxy service"
)

// orgRoleScopes is the upstream's organization template: role → scopes
// (upstream-my-contract.md §2.12).
func orgRoleScopes() []struct {
	role   string
	scopes []string
} {
	return []struct {
		role   string
		scopes []string
	}{
		{RoleOwner, []string{"read:distributors", "manage:distributors", "destroy:distributors",
			"read:resellers", "manage:resellers", "destroy:resellers",
			"read:customers", "manage:customers", "destroy:customers"}},
		{RoleDistributor, []string{"read:resellers", "manage:resellers", "read:customers", "manage:customers"}},
		{RoleReseller, []string{"read:customers", "manage:customers"}},
		{RoleCustomer, nil},
	}
}

// userRoleScopes is the upstream's global user roles → API scopes.
func userRoleScopes() []struct {
	role   string
	scopes []string
} {
	return []struct {
		role   string
		scopes []string
	}{
		{RoleSuperAdmin, []string{"read:users", "manage:users", "destroy:users", "impersonate:users",
			"read:systems", "manage:systems", "destroy:systems"}},
		{RoleAdmin, []string{"read:users", "manage:users", "read:systems", "manage:systems"}},
		{RoleSupport, []string{"read:users", "impersonate:users", "read:systems"}},
		{RoleReader, []string{"read:users", "read:systems"}},
	}
}

// proxyAPIScopes are the scopes of logto-proxy's API resource; the first four
// are what the service role holds.
func proxyAPIScopes() []string {
	return []string{"read:customers", "read:resellers", "read:distributors", "read:users",
		"manage:users", "destroy:users", "impersonate:users", "read:systems", "manage:systems", "destroy:systems"}
}

// Template is the organization template and API setup the seeds create:
// everything a test needs to name roles and scopes by their ids.
type Template struct {
	// OrgRoles and OrgScopes map names to organization role and scope ids.
	OrgRoles  map[string]string
	OrgScopes map[string]string
	// UserRoles maps global user role names to ids.
	UserRoles map[string]string
	// APIResource is logto-proxy's API resource; APIScopes maps its scope
	// names to ids.
	APIResource Resource
	APIScopes   map[string]string
	// ServiceRoleID is the M2M role holding read:customers, read:resellers,
	// read:distributors and read:users; ServiceApp holds that role.
	ServiceRoleID string
	ServiceApp    M2MApp
}

// EnsureTemplate creates (once; later calls return the same ids) the
// upstream's organization roles and scopes, logto-proxy's API resource with
// its scopes, the global user roles and the service M2M application.
func (s *Server) EnsureTemplate() (*Template, error) {
	s.seedMu.Lock()
	defer s.seedMu.Unlock()
	if s.template != nil {
		return s.template, nil
	}
	t := &Template{OrgRoles: map[string]string{}, OrgScopes: map[string]string{},
		UserRoles: map[string]string{}, APIScopes: map[string]string{}}
	for _, rs := range orgRoleScopes() {
		var ids []string
		for _, name := range rs.scopes {
			if _, ok := t.OrgScopes[name]; !ok {
				sc, err := s.CreateOrganizationScope(name, "")
				if err != nil {
					return nil, fmt.Errorf("seed organization scope %s: %w", name, err)
				}
				t.OrgScopes[name] = sc.ID
			}
			ids = append(ids, t.OrgScopes[name])
		}
		role, err := s.CreateOrganizationRole(OrganizationRoleSpec{Name: rs.role, ScopeIDs: ids})
		if err != nil {
			return nil, fmt.Errorf("seed organization role %s: %w", rs.role, err)
		}
		t.OrgRoles[rs.role] = role.ID
	}
	res, scopes, err := s.CreateAPIResource("logto-proxy", ProxyAPIIndicator, proxyAPIScopes()...)
	if err != nil {
		return nil, fmt.Errorf("seed API resource: %w", err)
	}
	t.APIResource = res
	for _, sc := range scopes {
		t.APIScopes[sc.Name] = sc.ID
	}
	for _, rs := range userRoleScopes() {
		ids := make([]string, len(rs.scopes))
		for i, name := range rs.scopes {
			ids[i] = t.APIScopes[name]
		}
		role, err := s.CreateRole(RoleSpec{Name: rs.role, Description: rs.role, ScopeIDs: ids})
		if err != nil {
			return nil, fmt.Errorf("seed user role %s: %w", rs.role, err)
		}
		t.UserRoles[rs.role] = role.ID
	}
	serviceScopes := proxyAPIScopes()[:4]
	ids := make([]string, len(serviceScopes))
	for i, name := range serviceScopes {
		ids[i] = t.APIScopes[name]
	}
	role, err := s.CreateRole(RoleSpec{Name: serviceRoleName, Description: "Read access for logto-proxy's clients",
		Type: RoleTypeMachineToMachine, ScopeIDs: ids})
	if err != nil {
		return nil, fmt.Errorf("seed service role: %w", err)
	}
	t.ServiceRoleID = role.ID
	app, err := s.CreateM2MApp(M2MAppSpec{Name: serviceAppName, RoleIDs: []string{role.ID}})
	if err != nil {
		return nil, fmt.Errorf("seed service app: %w", err)
	}
	t.ServiceApp = app
	s.template = t
	return t, nil
}

// Fixture is the upstream's authorization fixture (see SeedFixture).
type Fixture struct {
	*Template
	// Orgs maps fixture names (Owner, d1, d2, d1r1, d1r2, d2r1, d1r1c1,
	// d1r1c2, d1r2c1, d2r1c1, d1c1) to organization ids.
	Orgs map[string]string
	// Users maps the same fixture names to the id of the organization's user
	// (username = the fixture name in lower case).
	Users map[string]string
}

// fixtureNode is one organization of the fixture tree.
type fixtureNode struct {
	name, parent, kind, role string
}

func fixtureTree() []fixtureNode {
	return []fixtureNode{
		{"Owner", "", "", RoleOwner},
		{"d1", "Owner", "distributor", RoleDistributor},
		{"d2", "Owner", "distributor", RoleDistributor},
		{"d1r1", "d1", "reseller", RoleReseller},
		{"d1r2", "d1", "reseller", RoleReseller},
		{"d2r1", "d2", "reseller", RoleReseller},
		{"d1r1c1", "d1r1", "customer", RoleCustomer},
		{"d1r1c2", "d1r1", "customer", RoleCustomer},
		{"d1r2c1", "d1r2", "customer", RoleCustomer},
		{"d2r1c1", "d2r1", "customer", RoleCustomer},
		{"d1c1", "d1", "customer", RoleCustomer},
	}
}

// creatorSnapshot is the upstream's createdByUser object.
type creatorSnapshot struct {
	UserID           string `json:"user_id"`
	Username         string `json:"username"`
	Name             string `json:"name"`
	Email            string `json:"email"`
	OrganizationID   string `json:"organization_id"`
	OrganizationName string `json:"organization_name"`
}

// orgCustomData is the customData the upstream writes on an organization
// (DESIGN.md §2), plus this service's suspension, deletion and rebranding
// keys.
type orgCustomData struct {
	Type              string           `json:"type"`
	CreatedBy         string           `json:"createdBy"`
	CreatedAt         string           `json:"createdAt"`
	CreatedByUser     *creatorSnapshot `json:"createdByUser,omitempty"`
	VAT               string           `json:"vat"`
	Address           string           `json:"address"`
	City              string           `json:"city"`
	Email             string           `json:"email"`
	Phone             string           `json:"phone"`
	Language          string           `json:"language"`
	SuspendedAt       string           `json:"suspendedAt,omitempty"`
	DeletedAt         string           `json:"deletedAt,omitempty"`
	RebrandingEnabled bool             `json:"rebrandingEnabled,omitempty"`
}

// userCustomData is the customData the upstream writes on a user.
type userCustomData struct {
	OrganizationID string   `json:"organizationId"`
	UserRoleIDs    []string `json:"userRoleIds"`
	CreatedBy      string   `json:"createdBy"`
	CreatedAt      string   `json:"createdAt"`
}

// SeedFixture creates the upstream's authorization fixture through the same
// code paths as the HTTP API (so registered webhooks fire): the template (see
// EnsureTemplate), an Owner organization with distributors d1 and d2,
// resellers d1r1, d1r2 (under d1) and d2r1 (under d2), customers d1r1c1,
// d1r1c2, d1r2c1, d2r1c1 and d1c1 (directly under d1), and one user per
// organization holding the matching organization role and the Admin role.
// Call it once per server.
func (s *Server) SeedFixture() (*Fixture, error) {
	tpl, err := s.EnsureTemplate()
	if err != nil {
		return nil, err
	}
	f := &Fixture{Template: tpl, Orgs: map[string]string{}, Users: map[string]string{}}
	snapshots := map[string]*creatorSnapshot{}
	for i, n := range fixtureTree() {
		now := s.clock().UTC().Format(time.RFC3339)
		fields := map[string]any{"name": n.name, "description": n.name + " organization"}
		if n.kind != "" {
			cd := orgCustomData{
				Type: n.kind, CreatedBy: f.Orgs[n.parent], CreatedAt: now, CreatedByUser: snapshots[n.parent],
				VAT: fmt.Sprintf("IT%011d", 10000000000+i), Address: fmt.Sprintf("Via %s %d", n.name, i+1),
				City: "Pesaro", Email: n.name + "@example.com", Phone: fmt.Sprintf("+39 0721 %06d", i), Language: "it",
			}
			fields["customData"] = cd
		}
		org, err := s.CreateOrganization(fields)
		if err != nil {
			return nil, fmt.Errorf("seed fixture organization %s: %w", n.name, err)
		}
		f.Orgs[n.name] = org.ID

		username := lowerASCII(n.name)
		createdBy := org.ID
		if n.parent != "" {
			createdBy = f.Orgs[n.parent]
		}
		user, err := s.CreateUser(map[string]any{
			"username": username, "primaryEmail": username + "@example.com", "name": n.name + " Admin",
			"customData": userCustomData{OrganizationID: org.ID, UserRoleIDs: []string{tpl.UserRoles[RoleAdmin]},
				CreatedBy: createdBy, CreatedAt: now},
		})
		if err != nil {
			return nil, fmt.Errorf("seed fixture user %s: %w", n.name, err)
		}
		f.Users[n.name] = user.ID
		if err := s.AddOrganizationMembers(org.ID, user.ID); err != nil {
			return nil, fmt.Errorf("seed fixture membership %s: %w", n.name, err)
		}
		if err := s.AssignOrganizationUserRoles(org.ID, user.ID, tpl.OrgRoles[n.role]); err != nil {
			return nil, fmt.Errorf("seed fixture organization role %s: %w", n.name, err)
		}
		if err := s.AssignUserRoles(user.ID, tpl.UserRoles[RoleAdmin]); err != nil {
			return nil, fmt.Errorf("seed fixture user role %s: %w", n.name, err)
		}
		snapshots[n.name] = &creatorSnapshot{UserID: user.ID, Username: username, Name: n.name + " Admin",
			Email: username + "@example.com", OrganizationID: org.ID, OrganizationName: n.name}
	}
	return f, nil
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// BulkOptions sizes a generated hierarchy. Zero values take the defaults in
// brackets; a negative count or ratio means none.
type BulkOptions struct {
	Distributors            int // [10]
	ResellersPerDistributor int // [10]
	CustomersPerReseller    int // [10]
	CustomersPerDistributor int // customers directly under a distributor [0]
	// UsersPerOrganization creates members holding the matching
	// organization role; the first of each holds Admin, the others Reader.
	UsersPerOrganization int // [0]
	// SuspendedRatio, DeletedRatio and RebrandingRatio are the fractions of
	// organizations given suspendedAt, deletedAt and rebrandingEnabled.
	SuspendedRatio, DeletedRatio, RebrandingRatio float64 // [0.02, 0.01, 0.05]
	// Seed makes the generated data deterministic [1].
	Seed uint64
	// BaseTime is the createdAt of the first organization; later ones are a
	// minute apart [2024-01-01T00:00:00Z].
	BaseTime time.Time
}

// Bulk lists what SeedBulk created.
type Bulk struct {
	OwnerID                            string
	Distributors, Resellers, Customers []string
	Users                              []string
	// Suspended, Deleted and Rebranding are the organizations carrying
	// suspendedAt, deletedAt and rebrandingEnabled.
	Suspended, Deleted, Rebranding []string
}

// Total is the number of distributors, resellers and customers SeedBulk
// created (the Owner organization not included).
func (b *Bulk) Total() int {
	return len(b.Distributors) + len(b.Resellers) + len(b.Customers)
}

func ratio(v, def float64) float64 {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

func orDefault(v, def int) int {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// SeedBulk generates a large hierarchy (100 × 10 × 10 in well under a
// second) under the Owner organization (created when missing), with the
// fixture's customData conventions and a deterministic sprinkling of
// suspended, soft-deleted and rebranding organizations. It writes the tenant
// directly: no webhooks are sent.
func (s *Server) SeedBulk(opts BulkOptions) (*Bulk, error) {
	tpl, err := s.EnsureTemplate()
	if err != nil {
		return nil, err
	}
	g := newBulkGen(opts, tpl)

	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	g.t, g.clock = s.data, s.clock
	owner, err := g.owner()
	if err != nil {
		return nil, err
	}
	g.out.OwnerID = owner.org.ID
	for d := range g.distributors {
		dist, err := g.org(owner, "distributor", fmt.Sprintf("Distributor %d", d+1))
		if err != nil {
			return nil, err
		}
		g.out.Distributors = append(g.out.Distributors, dist.org.ID)
		for c := range g.directCustomers {
			if err := g.customer(dist, fmt.Sprintf("Customer %d.0.%d", d+1, c+1)); err != nil {
				return nil, err
			}
		}
		for r := range g.resellers {
			res, err := g.org(dist, "reseller", fmt.Sprintf("Reseller %d.%d", d+1, r+1))
			if err != nil {
				return nil, err
			}
			g.out.Resellers = append(g.out.Resellers, res.org.ID)
			for c := range g.customers {
				if err := g.customer(res, fmt.Sprintf("Customer %d.%d.%d", d+1, r+1, c+1)); err != nil {
					return nil, err
				}
			}
		}
	}
	// Mix the new organizations into the heap order at random places.
	s.data.shuffleOrgs()
	slices.SortFunc(s.data.userOrder, compareUserOrder)
	return g.out, nil
}

// bulkGen carries SeedBulk's state. It runs under the tenant's write lock.
type bulkGen struct {
	t     *tenant
	clock func() time.Time
	rng   *rand.Rand
	tpl   *Template
	out   *Bulk

	distributors, resellers, customers, directCustomers int
	usersPerOrg                                         int
	suspended, deleted, rebranding                      float64
	base                                                time.Time
	seq                                                 int
	creators                                            map[string]*creatorSnapshot
}

func newBulkGen(opts BulkOptions, tpl *Template) *bulkGen {
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	base := opts.BaseTime
	if base.IsZero() {
		base = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &bulkGen{
		rng:             rand.New(rand.NewPCG(seed, seed*0x2545f4914f6cdd1d)),
		tpl:             tpl,
		out:             &Bulk{},
		distributors:    orDefault(opts.Distributors, 10),
		resellers:       orDefault(opts.ResellersPerDistributor, 10),
		customers:       orDefault(opts.CustomersPerReseller, 10),
		directCustomers: max(opts.CustomersPerDistributor, 0),
		usersPerOrg:     max(opts.UsersPerOrganization, 0),
		suspended:       ratio(opts.SuspendedRatio, 0.02),
		deleted:         ratio(opts.DeletedRatio, 0.01),
		rebranding:      ratio(opts.RebrandingRatio, 0.05),
		base:            base,
		creators:        map[string]*creatorSnapshot{},
	}
}

// owner returns the Owner organization, creating it (and its admin user)
// when missing.
func (g *bulkGen) owner() (*orgEntry, error) {
	for _, e := range g.t.orgOrder {
		if e.org.Name == "Owner" && !hasType(e.org.CustomData) {
			return e, g.ensureCreator(e)
		}
	}
	desc := "Owner organization"
	e := newOrgEntry(Organization{TenantID: tenantID, ID: g.t.newID(), Name: "Owner", Description: &desc,
		CustomData: emptyObject(), Color: emptyObject(), Branding: emptyObject(), CreatedAt: g.base.UnixMilli()})
	g.t.orgs[e.org.ID] = e
	g.t.orgOrder = append(g.t.orgOrder, e)
	return e, g.ensureCreator(e)
}

// hasType reports whether customData carries a "type" key.
func hasType(customData []byte) bool {
	var probe struct {
		Type *string `json:"type"`
	}
	return json.Unmarshal(customData, &probe) == nil && probe.Type != nil
}

// ensureCreator records who "created" the organization's children: its
// first member, or a new admin user when it has none.
func (g *bulkGen) ensureCreator(e *orgEntry) error {
	ids := sortedKeys(setOfKeys(e.members))
	if len(ids) > 0 {
		if u := g.t.users[ids[0]]; u != nil {
			g.creators[e.org.ID] = snapshotOf(&u.user, e)
			return nil
		}
	}
	u, err := g.user(e, RoleOwner, RoleAdmin)
	if err != nil {
		return err
	}
	g.creators[e.org.ID] = snapshotOf(&u.user, e)
	return nil
}

func snapshotOf(u *User, e *orgEntry) *creatorSnapshot {
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return &creatorSnapshot{UserID: u.ID, Username: deref(u.Username), Name: deref(u.Name),
		Email: deref(u.PrimaryEmail), OrganizationID: e.org.ID, OrganizationName: e.org.Name}
}

// cities and languages give the generated business fields some variety.
func bulkCity(i int) string {
	cities := [...]string{"Pesaro", "Milano", "Roma", "Torino", "Bologna", "Firenze", "Napoli", "Genova"}
	return cities[i%len(cities)]
}

func bulkLanguage(i int) string {
	if i%3 == 0 {
		return "en"
	}
	return "it"
}

// org creates one organization under parent.
func (g *bulkGen) org(parent *orgEntry, kind, name string) (*orgEntry, error) {
	g.seq++
	created := g.base.Add(time.Duration(g.seq) * time.Minute)
	cd := orgCustomData{
		Type: kind, CreatedBy: parent.org.ID, CreatedAt: created.Format(time.RFC3339),
		CreatedByUser: g.creators[parent.org.ID],
		VAT:           fmt.Sprintf("IT%011d", 10000000000+g.seq), Address: fmt.Sprintf("Via Roma %d", g.seq%200+1),
		City: bulkCity(g.seq), Email: fmt.Sprintf("org%06d@example.com", g.seq),
		Phone: fmt.Sprintf("+39 0721 %06d", g.seq), Language: bulkLanguage(g.seq),
	}
	flag := func(p float64) bool { return p > 0 && g.rng.Float64() < p }
	id := g.t.newID()
	if flag(g.suspended) {
		cd.SuspendedAt = created.Add(24 * time.Hour).Format(time.RFC3339)
		g.out.Suspended = append(g.out.Suspended, id)
	}
	if flag(g.deleted) {
		cd.DeletedAt = created.Add(48 * time.Hour).Format(time.RFC3339)
		g.out.Deleted = append(g.out.Deleted, id)
	}
	if kind != "customer" && flag(g.rebranding) {
		cd.RebrandingEnabled = true
		g.out.Rebranding = append(g.out.Rebranding, id)
	}
	raw, err := encodeJSON(cd)
	if err != nil {
		return nil, fmt.Errorf("seed bulk organization %s: %w", name, err)
	}
	desc := name + " (" + kind + ")"
	e := newOrgEntry(Organization{TenantID: tenantID, ID: id, Name: name, Description: &desc, CustomData: raw,
		Color: emptyObject(), Branding: emptyObject(), CreatedAt: created.UnixMilli()})
	g.t.orgs[id] = e
	g.t.orgOrder = append(g.t.orgOrder, e)
	role := RoleCustomer
	switch kind {
	case "distributor":
		role = RoleDistributor
	case "reseller":
		role = RoleReseller
	}
	for i := range g.usersPerOrg {
		userRole := RoleReader
		if i == 0 {
			userRole = RoleAdmin
		}
		u, err := g.user(e, role, userRole)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			g.creators[id] = snapshotOf(&u.user, e)
		}
	}
	if g.creators[id] == nil {
		g.creators[id] = g.creators[parent.org.ID]
	}
	return e, nil
}

// customer creates a customer under parent.
func (g *bulkGen) customer(parent *orgEntry, name string) error {
	c, err := g.org(parent, "customer", name)
	if err != nil {
		return err
	}
	g.out.Customers = append(g.out.Customers, c.org.ID)
	return nil
}

// user creates a member of e holding orgRole and the global userRole.
func (g *bulkGen) user(e *orgEntry, orgRole, userRole string) (*userEntry, error) {
	g.seq++
	id := g.t.newID()
	username := fmt.Sprintf("user%07d", g.seq)
	email := username + "@example.com"
	name := fmt.Sprintf("User %d of %s", len(e.members)+1, e.org.Name)
	created := g.base.Add(time.Duration(g.seq) * time.Minute)
	cd, err := encodeJSON(userCustomData{OrganizationID: e.org.ID, UserRoleIDs: []string{g.tpl.UserRoles[userRole]},
		CreatedBy: e.org.ID, CreatedAt: created.Format(time.RFC3339)})
	if err != nil {
		return nil, fmt.Errorf("seed bulk user of %s: %w", e.org.Name, err)
	}
	u := &userEntry{
		user: User{UserInfo: UserInfo{ID: id, Username: &username, PrimaryEmail: &email, Name: &name,
			CustomData: cd, Identities: emptyObject(), Profile: emptyObject(),
			CreatedAt: created.UnixMilli(), UpdatedAt: created.UnixMilli()}},
		roles: setOf(g.tpl.UserRoles[userRole]),
		orgs:  setOf(e.org.ID),
	}
	g.t.users[id] = u
	g.t.userOrder = append(g.t.userOrder, u)
	e.members[id] = setOf(g.tpl.OrgRoles[orgRole])
	g.out.Users = append(g.out.Users, id)
	return u, nil
}
