package logto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// fixture is a small tenant built through the simulator's in-process
// helpers, with the values the typed reads must return.
type fixture struct {
	owner, acme, globex     logtotest.Organization
	alice, bob, carol       logtotest.User
	bulkUserIDs             []string // bulk users, in creation order
	distributorRole, viewer logtotest.OrganizationRole
	readCustomers           logtotest.OrganizationScope
	adminRole               logtotest.Role
	adminScopes             []logtotest.Scope
}

const bulkUsers = 150

// must unwraps a fixture helper's result; a failure while building the
// fixture aborts the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("building the fixture: %v", err))
	}
	return v
}

func buildFixture(t *testing.T, s *logtotest.Server) fixture {
	t.Helper()
	var f fixture
	f.owner = must(s.CreateOrganization(map[string]any{"name": "Owner"}))
	f.acme = must(s.CreateOrganization(map[string]any{
		"name": "Acme", "description": "the distributor",
		"customData": map[string]any{
			"type": "distributor", "createdBy": f.owner.ID, "vat": "IT0123",
			"rebrandingEnabled": true, "big": json.RawMessage("12345678901234567890"),
		},
		"branding": map[string]any{"logoUrl": "https://acme.test/logo.png"},
	}))
	f.globex = must(s.CreateOrganization(map[string]any{
		"name": "Globex", "customData": map[string]any{"type": "reseller", "createdBy": f.acme.ID},
	}))

	f.readCustomers = must(s.CreateOrganizationScope("read:customers", "Read customers"))
	readResellers := must(s.CreateOrganizationScope("read:resellers", ""))
	res, scopes := createResource(t, s)
	f.adminScopes = scopes
	f.distributorRole = must(s.CreateOrganizationRole(logtotest.OrganizationRoleSpec{
		Name: "Distributor", Description: "distributor admins",
		ScopeIDs:         []string{f.readCustomers.ID, readResellers.ID},
		ResourceScopeIDs: []string{scopes[0].ID},
	}))
	f.viewer = must(s.CreateOrganizationRole(logtotest.OrganizationRoleSpec{
		Name: "Viewer", ScopeIDs: []string{f.readCustomers.ID},
	}))
	_ = res

	ids := make([]string, len(scopes))
	for i, sc := range scopes {
		ids[i] = sc.ID
	}
	f.adminRole = must(s.CreateRole(logtotest.RoleSpec{Name: "Admin", Description: "administrators", ScopeIDs: ids}))

	f.alice = must(s.CreateUser(map[string]any{
		"username": "alice", "primaryEmail": "alice@acme.test", "name": "Alice",
		"customData": map[string]any{"organizationId": f.acme.ID, "userRoleIds": []string{"admin"}},
	}))
	f.bob = must(s.CreateUser(map[string]any{"username": "bob", "primaryEmail": "bob@acme.test"}))
	f.carol = must(s.CreateUser(map[string]any{"username": "carol"}))
	for i := range bulkUsers {
		u := must(s.CreateUser(map[string]any{"username": fmt.Sprintf("user_%03d", i)}))
		f.bulkUserIDs = append(f.bulkUserIDs, u.ID)
	}

	if err := s.AddOrganizationMembers(f.acme.ID, f.alice.ID, f.bob.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignOrganizationUserRoles(f.acme.ID, f.alice.ID, f.distributorRole.ID, f.viewer.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOrganizationMembers(f.globex.ID, f.alice.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignUserRoles(f.alice.ID, f.adminRole.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

// createResource makes an API resource with enough scopes to need two pages.
func createResource(t *testing.T, s *logtotest.Server) (logtotest.Resource, []logtotest.Scope) {
	t.Helper()
	names := make([]string, 130)
	for i := range names {
		names[i] = fmt.Sprintf("perm:%03d", i)
	}
	res, scopes, err := s.CreateAPIResource("Things API", "https://things.test", names...)
	if err != nil {
		t.Fatal(err)
	}
	return res, scopes
}

func TestTypedReads(t *testing.T) {
	s := newSim(t)
	f := buildFixture(t, s)
	c := newTestClient(t, s, nil)
	ctx := context.Background()

	t.Run("GetOrganization", func(t *testing.T) {
		o, err := c.GetOrganization(ctx, f.acme.ID)
		if err != nil {
			t.Fatal(err)
		}
		if o.ID != f.acme.ID || o.Name != "Acme" || o.TenantID != "default" || o.CreatedAt != f.acme.CreatedAt {
			t.Errorf("base fields: %+v", o)
		}
		if o.Description == nil || *o.Description != "the distributor" || o.CustomCSS != nil {
			t.Errorf("nullable fields: description %v, customCss %v", o.Description, o.CustomCSS)
		}
		cd := orgData(t, o)
		if cd["type"] != "distributor" || cd["createdBy"] != f.owner.ID || cd["vat"] != "IT0123" || cd["rebrandingEnabled"] != true {
			t.Errorf("customData: %v", cd)
		}
		if n, ok := cd["big"].(json.Number); !ok || n.String() != "12345678901234567890" {
			t.Errorf("numbers must pass through exactly, got %#v", cd["big"])
		}
		if o.Branding.LogoURL != "https://acme.test/logo.png" {
			t.Errorf("branding: %+v", o.Branding)
		}
		owner, err := c.GetOrganization(ctx, f.owner.ID)
		if err != nil || owner.Description != nil || string(owner.CustomData) != "{}" {
			t.Errorf("owner: %+v, %v", owner, err)
		}
	})

	t.Run("ListOrganizationMembers", func(t *testing.T) {
		members, err := c.ListOrganizationMembers(ctx, f.acme.ID)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]Member{}
		for _, m := range members {
			byID[m.ID] = m
		}
		if len(members) != 2 || byID[f.alice.ID].ID == "" || byID[f.bob.ID].ID == "" {
			t.Fatalf("members: %+v", members)
		}
		alice := byID[f.alice.ID]
		if got := roleNames(alice.OrganizationRoles); !slices.Equal(got, []string{"Distributor", "Viewer"}) {
			t.Errorf("alice's roles %v", got)
		}
		if alice.Username == nil || *alice.Username != "alice" || alice.CustomData["organizationId"] != f.acme.ID {
			t.Errorf("alice: %+v", alice.User)
		}
		if bob := byID[f.bob.ID]; bob.OrganizationRoles == nil || len(bob.OrganizationRoles) != 0 {
			t.Errorf("bob's roles %#v, want []", bob.OrganizationRoles)
		}
		none, err := c.ListOrganizationMembers(ctx, "no-such-org")
		if err != nil || len(none) != 0 {
			t.Errorf("unknown organization: %v, %v", none, err)
		}
	})

	t.Run("MemberOrganizationRoles", func(t *testing.T) {
		roles, err := c.MemberOrganizationRoles(ctx, f.acme.ID, f.alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(roles) != 2 || roleIDs(roles)[f.distributorRole.ID] == "" || roles[0].Type != "User" {
			t.Errorf("roles %+v", roles)
		}
		_, err = c.MemberOrganizationRoles(ctx, f.acme.ID, f.carol.ID)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrBadRequest) || e.Code != "organization.require_membership" {
			t.Errorf("non-member: %#v", err)
		}
	})

	t.Run("GetUser", func(t *testing.T) {
		for _, sso := range []bool{false, true} {
			u, err := c.GetUser(ctx, f.alice.ID, sso)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != f.alice.ID || *u.Username != "alice" || *u.PrimaryEmail != "alice@acme.test" ||
				*u.Name != "Alice" || u.PrimaryPhone != nil || u.IsSuspended || u.CreatedAt == 0 {
				t.Errorf("user %+v", u)
			}
			if ids, ok := u.CustomData["userRoleIds"].([]any); !ok || len(ids) != 1 || ids[0] != "admin" {
				t.Errorf("customData %v", u.CustomData)
			}
			if sso && u.SSOIdentities == nil {
				t.Errorf("includeSSO: ssoIdentities missing")
			}
			if !sso && u.SSOIdentities != nil {
				t.Errorf("ssoIdentities sent without asking")
			}
		}
	})

	t.Run("ListUsers", func(t *testing.T) {
		s.ResetCalls()
		users, err := c.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != bulkUsers+3 {
			t.Fatalf("%d users, want %d", len(users), bulkUsers+3)
		}
		if n := s.Calls("GET /api/users"); n != 2 {
			t.Errorf("%d page requests, want 2", n)
		}
		seen := map[string]bool{}
		for _, u := range users {
			if seen[u.ID] {
				t.Fatalf("user %s twice", u.ID)
			}
			seen[u.ID] = true
		}
		if !seen[f.alice.ID] || !seen[f.bulkUserIDs[bulkUsers-1]] {
			t.Errorf("users missing")
		}
	})

	t.Run("SearchUsers", func(t *testing.T) {
		p, err := c.SearchUsers(ctx, UserSearch{
			Fields: map[string][]string{"username": {"alice", "bob"}}, FieldModes: map[string]string{"username": "exact"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 2 || len(p.Users) != 2 {
			t.Errorf("exact search: %d of %d", len(p.Users), p.Total)
		}
		p, err = c.SearchUsers(ctx, UserSearch{Search: "%user_1%", PageSize: 10, Page: 2})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 50 || len(p.Users) != 10 {
			t.Errorf("like search page 2: %d of %d, want 10 of 50", len(p.Users), p.Total)
		}
		for _, u := range p.Users {
			if !strings.HasPrefix(*u.Username, "user_1") {
				t.Errorf("unexpected match %s", *u.Username)
			}
		}
		if _, err := c.SearchUsers(ctx, UserSearch{PageSize: 101}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("page size 101: %v", err)
		}
	})

	t.Run("UsersByIDs", func(t *testing.T) {
		s.ResetCalls()
		ids := append([]string{"no-such-user", f.carol.ID, ""}, f.bulkUserIDs...)
		ids = append(ids, f.carol.ID, strings.ToUpper(f.bulkUserIDs[0]))
		users, err := c.UsersByIDs(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]string{f.carol.ID}, f.bulkUserIDs...)
		got := make([]string, len(users))
		for i, u := range users {
			got[i] = u.ID
		}
		if !slices.Equal(got, want) {
			t.Errorf("got %d users in order %v...", len(got), got[:min(3, len(got))])
		}
		// 152 distinct ids (one unknown): two batches of at most 100.
		if n := s.Calls("GET /api/users"); n != 2 {
			t.Errorf("%d search requests, want 2", n)
		}
		none, err := c.UsersByIDs(ctx, nil)
		if err != nil || len(none) != 0 {
			t.Errorf("no ids: %v, %v", none, err)
		}
	})

	t.Run("UserOrganizations", func(t *testing.T) {
		orgs, err := c.UserOrganizations(ctx, f.alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]UserOrganization{}
		for _, o := range orgs {
			byID[o.ID] = o
		}
		if len(orgs) != 2 || byID[f.acme.ID].Name != "Acme" || byID[f.globex.ID].Name != "Globex" {
			t.Fatalf("orgs %+v", orgs)
		}
		if got := roleNames(byID[f.acme.ID].OrganizationRoles); !slices.Equal(got, []string{"Distributor", "Viewer"}) {
			t.Errorf("roles in Acme %v", got)
		}
		if orgData(t, byID[f.globex.ID].Organization)["type"] != "reseller" {
			t.Errorf("customData %v", byID[f.globex.ID].CustomData)
		}
		if _, err := c.UserOrganizations(ctx, "no-such-user"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown user: %v", err)
		}
	})

	t.Run("UserRoles", func(t *testing.T) {
		roles, err := c.UserRoles(ctx, f.alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(roles) != 1 || roles[0].ID != f.adminRole.ID || roles[0].Name != "Admin" || roles[0].Type != "User" {
			t.Errorf("roles %+v", roles)
		}
		if roles, err := c.UserRoles(ctx, f.bob.ID); err != nil || len(roles) != 0 {
			t.Errorf("bob: %v, %v", roles, err)
		}
		if _, err := c.UserRoles(ctx, "no-such-user"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown user: %v", err)
		}
	})

	t.Run("RoleScopes", func(t *testing.T) {
		scopes, err := c.RoleScopes(ctx, f.adminRole.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(scopes) != len(f.adminScopes) {
			t.Fatalf("%d scopes, want %d", len(scopes), len(f.adminScopes))
		}
		names := map[string]bool{}
		for _, sc := range scopes {
			names[sc.Name] = true
			if sc.Resource == nil || sc.Resource.Indicator != "https://things.test" || sc.ResourceID != sc.Resource.ID {
				t.Fatalf("scope %+v", sc)
			}
		}
		if !names["perm:000"] || !names["perm:129"] {
			t.Errorf("scopes missing")
		}
		if _, err := c.RoleScopes(ctx, "no-such-role"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown role: %v", err)
		}
	})

	t.Run("OrganizationRoles", func(t *testing.T) {
		roles, err := c.ListOrganizationRoles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]OrganizationRole{}
		for _, r := range roles {
			byName[r.Name] = r
		}
		d := byName["Distributor"]
		if len(roles) != 2 || d.ID != f.distributorRole.ID || d.Description == nil || *d.Description != "distributor admins" {
			t.Fatalf("roles %+v", roles)
		}
		if len(d.Scopes) != 2 || len(d.ResourceScopes) != 1 || d.ResourceScopes[0].Resource.Name != "Things API" {
			t.Errorf("distributor scopes %+v / %+v", d.Scopes, d.ResourceScopes)
		}
		scopes, err := c.OrganizationRoleScopes(ctx, f.viewer.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(scopes) != 1 || scopes[0].ID != f.readCustomers.ID || scopes[0].Name != "read:customers" ||
			scopes[0].Description == nil || *scopes[0].Description != "Read customers" {
			t.Errorf("viewer scopes %+v", scopes)
		}
		if _, err := c.OrganizationRoleScopes(ctx, "no-such-role"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown role: %v", err)
		}
	})
}

func roleNames(refs []OrganizationRoleRef) []string {
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Name
	}
	slices.Sort(names)
	return names
}

func roleIDs(roles []OrganizationRole) map[string]string {
	m := map[string]string{}
	for _, r := range roles {
		m[r.ID] = r.Name
	}
	return m
}

func TestOIDCReads(t *testing.T) {
	s := newSim(t)
	alice := must(s.CreateUser(map[string]any{"username": "alice", "primaryEmail": "alice@acme.test"}))
	org := must(s.CreateOrganization(map[string]any{"name": "Acme"}))
	if err := s.AddOrganizationMembers(org.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, s, nil)
	ctx := context.Background()

	t.Run("UserInfo", func(t *testing.T) {
		token := must(s.IssueUserToken(alice.ID, logtotest.UserTokenOptions{
			Resource: "https://default.logto.app/api", Scopes: []string{"urn:logto:scope:organizations"},
		}))
		info, err := c.UserInfo(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		if info.Sub != alice.ID || info.Username == nil || *info.Username != "alice" || !info.EmailVerified ||
			!slices.Equal(info.Organizations, []string{org.ID}) || info.Claims["sub"] != alice.ID {
			t.Errorf("userinfo %+v", info)
		}
		opaque := must(s.IssueUserToken(alice.ID, logtotest.UserTokenOptions{Opaque: true}))
		if info, err := c.UserInfo(ctx, opaque); err != nil || info.Sub != alice.ID {
			t.Errorf("opaque token: %+v, %v", info, err)
		}
		for _, bad := range []string{"not-a-token", "", "a b"} {
			_, err := c.UserInfo(ctx, bad)
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("UserInfo(%q): %v", bad, err)
			}
			if bad != "" && strings.Contains(err.Error(), bad) {
				t.Errorf("the token leaked into the error: %v", err)
			}
		}
		// The user's token, never the management one.
		if n := s.Calls("POST /oidc/token"); n != 0 {
			t.Errorf("%d management token requests for userinfo", n)
		}
	})

	t.Run("Discovery", func(t *testing.T) {
		conf, err := c.Discovery(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if conf.Issuer != s.Issuer() || conf.JWKSURI != s.URL()+"/oidc/jwks" || conf.UserinfoEndpoint != s.URL()+"/oidc/me" ||
			conf.TokenEndpoint != s.URL()+"/oidc/token" || !slices.Contains(conf.IDTokenSigningAlgValuesSupported, "ES384") {
			t.Errorf("discovery %+v", conf)
		}
	})

	t.Run("FetchJWKS", func(t *testing.T) {
		if err := s.RotateSigningKey(true); err != nil {
			t.Fatal(err)
		}
		raw, err := c.FetchJWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
				Kty string `json:"kty"`
			} `json:"keys"`
		}
		if err := json.Unmarshal(raw, &set); err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, k := range set.Keys {
			kids = append(kids, k.Kid)
		}
		if want := s.SigningKeyIDs(); !slices.Equal(kids, want) {
			t.Errorf("kids %v, want %v", kids, want)
		}
	})
}

// TestFixtureReadBack reads the simulator's upstream fixture back through
// the client: the hierarchy's customData, memberships, organization roles
// and their scopes, global roles and their scopes.
func TestFixtureReadBack(t *testing.T) {
	s := newSim(t)
	fx, err := s.SeedFixture()
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, s, nil)
	ctx := context.Background()

	// The fixture's documented tree: name → parent, type, organization role.
	tree := map[string]struct{ parent, kind, role string }{
		"Owner": {"", "", "Owner"},
		"d1":    {"Owner", "distributor", "Distributor"}, "d2": {"Owner", "distributor", "Distributor"},
		"d1r1": {"d1", "reseller", "Reseller"}, "d1r2": {"d1", "reseller", "Reseller"}, "d2r1": {"d2", "reseller", "Reseller"},
		"d1r1c1": {"d1r1", "customer", "Customer"}, "d1r1c2": {"d1r1", "customer", "Customer"},
		"d1r2c1": {"d1r2", "customer", "Customer"}, "d2r1c1": {"d2r1", "customer", "Customer"},
		"d1c1": {"d1", "customer", "Customer"},
	}

	orgs, err := c.ListOrganizations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Organization{}
	for _, o := range orgs {
		byID[o.ID] = o
	}
	if len(orgs) != len(tree) {
		t.Fatalf("%d organizations, want %d", len(orgs), len(tree))
	}
	for name, node := range tree {
		o := byID[fx.Orgs[name]]
		if o.Name != name {
			t.Errorf("%s: listed as %q", name, o.Name)
		}
		if node.kind == "" {
			if string(o.CustomData) != "{}" {
				t.Errorf("Owner has customData %v", o.CustomData)
			}
			continue
		}
		if cd := orgData(t, o); cd["type"] != node.kind || cd["createdBy"] != fx.Orgs[node.parent] {
			t.Errorf("%s: customData %v", name, o.CustomData)
		}
	}

	userIDs := make([]string, 0, len(fx.Users))
	for name, node := range tree {
		uid := fx.Users[name]
		userIDs = append(userIDs, uid)
		memberships, err := c.UserOrganizations(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if len(memberships) != 1 || memberships[0].ID != fx.Orgs[name] ||
			!slices.Equal(roleNames(memberships[0].OrganizationRoles), []string{node.role}) {
			t.Errorf("%s's memberships %+v", name, memberships)
		}
		roles, err := c.UserRoles(ctx, uid)
		if err != nil || len(roles) != 1 || roles[0].ID != fx.UserRoles[logtotest.RoleAdmin] {
			t.Errorf("%s's global roles %+v, %v", name, roles, err)
		}
	}

	users, err := c.UsersByIDs(ctx, userIDs)
	if err != nil || len(users) != len(tree) {
		t.Fatalf("UsersByIDs: %d users, %v", len(users), err)
	}
	for _, u := range users {
		if u.CustomData["organizationId"] == nil || u.Username == nil {
			t.Errorf("user %+v", u)
		}
	}

	members, err := c.ListOrganizationMembers(ctx, fx.Orgs["d1"])
	if err != nil || len(members) != 1 || members[0].ID != fx.Users["d1"] ||
		!slices.Equal(roleNames(members[0].OrganizationRoles), []string{"Distributor"}) {
		t.Errorf("d1's members %+v, %v", members, err)
	}

	orgRoles, err := c.ListOrganizationRoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scopesOf := map[string][]string{}
	for _, r := range orgRoles {
		for _, sc := range r.Scopes {
			scopesOf[r.Name] = append(scopesOf[r.Name], sc.Name)
		}
		slices.Sort(scopesOf[r.Name])
	}
	if want := []string{"manage:customers", "read:customers"}; !slices.Equal(scopesOf["Reseller"], want) {
		t.Errorf("Reseller scopes %v, want %v", scopesOf["Reseller"], want)
	}
	if len(scopesOf["Owner"]) != 9 || len(scopesOf["Customer"]) != 0 {
		t.Errorf("organization role scopes %v", scopesOf)
	}
	distScopes, err := c.OrganizationRoleScopes(ctx, fx.OrgRoles[logtotest.RoleDistributor])
	if err != nil || len(distScopes) != 4 {
		t.Errorf("Distributor scopes %+v, %v", distScopes, err)
	}

	adminScopes, err := c.RoleScopes(ctx, fx.UserRoles[logtotest.RoleAdmin])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range adminScopes {
		names = append(names, sc.Name)
	}
	slices.Sort(names)
	if want := []string{"manage:systems", "manage:users", "read:systems", "read:users"}; !slices.Equal(names, want) {
		t.Errorf("Admin scopes %v, want %v", names, want)
	}
}

// orgData decodes an organization's raw customData the way a strict reader
// would, numbers kept exact.
func orgData(t testing.TB, o Organization) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(o.CustomData))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("organization %s: customData %q does not decode: %v", o.ID, o.CustomData, err)
	}
	return m
}
