package logtotest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

func TestSeedFixture(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	f, err := s.SeedFixture()
	if err != nil {
		t.Fatal(err)
	}
	parents := map[string]string{
		"d1": "Owner", "d2": "Owner", "d1r1": "d1", "d1r2": "d1", "d2r1": "d2",
		"d1r1c1": "d1r1", "d1r1c2": "d1r1", "d1r2c1": "d1r2", "d2r1c1": "d2r1", "d1c1": "d1",
	}
	types := map[string]string{"d": "distributor", "r": "reseller", "c": "customer"}
	if len(f.Orgs) != 11 || len(f.Users) != 11 {
		t.Fatalf("fixture has %d orgs, %d users", len(f.Orgs), len(f.Users))
	}
	a := newAPI(t, s)
	owner := getOrg(t, a, f.Orgs["Owner"])
	if owner.Name != "Owner" || strings.Contains(string(owner.CustomData), `"type"`) {
		t.Errorf("Owner = %+v", owner)
	}
	for name, parent := range parents {
		o := getOrg(t, a, f.Orgs[name])
		var cd struct {
			Type, CreatedBy, CreatedAt, VAT, Address, City, Email, Phone, Language string
			CreatedByUser                                                          map[string]string
		}
		if err := json.Unmarshal(o.CustomData, &cd); err != nil {
			t.Fatal(err)
		}
		wantType := types[string(name[len(name)-2])]
		if o.Name != name || cd.Type != wantType || cd.CreatedBy != f.Orgs[parent] {
			t.Errorf("%s: name %q type %q createdBy %q (want %q under %s)", name, o.Name, cd.Type, cd.CreatedBy, wantType, parent)
		}
		if _, err := time.Parse(time.RFC3339, cd.CreatedAt); err != nil || cd.VAT == "" || cd.City == "" ||
			cd.Email == "" || cd.Phone == "" || cd.Language == "" || cd.Address == "" {
			t.Errorf("%s: business fields %+v", name, cd)
		}
		snap := cd.CreatedByUser
		if snap["user_id"] != f.Users[parent] || snap["organization_id"] != f.Orgs[parent] ||
			snap["organization_name"] != parent || snap["username"] == "" || snap["email"] == "" {
			t.Errorf("%s: createdByUser %v", name, snap)
		}
	}
	roleOf := map[byte]string{'d': "Distributor", 'r': "Reseller", 'c': "Customer"}
	for name, uid := range f.Users {
		var orgs []logtotest.OrganizationWithRoles
		must(t, a.get("/users/"+uid+"/organizations"), http.StatusOK).json(t, &orgs)
		want := "Owner"
		if name != "Owner" {
			want = roleOf[name[len(name)-2]]
		}
		if len(orgs) != 1 || orgs[0].ID != f.Orgs[name] || len(orgs[0].OrganizationRoles) != 1 ||
			orgs[0].OrganizationRoles[0].Name != want {
			t.Errorf("user %s memberships = %+v", name, orgs)
		}
		var u logtotest.User
		must(t, a.get("/users/"+uid), http.StatusOK).json(t, &u)
		var cd struct {
			OrganizationID string   `json:"organizationId"`
			UserRoleIDs    []string `json:"userRoleIds"`
			CreatedBy      string   `json:"createdBy"`
			CreatedAt      string   `json:"createdAt"`
		}
		if err := json.Unmarshal(u.CustomData, &cd); err != nil {
			t.Fatal(err)
		}
		if *u.Username != strings.ToLower(name) || u.PrimaryEmail == nil || cd.OrganizationID != f.Orgs[name] ||
			!slices.Equal(cd.UserRoleIDs, []string{f.UserRoles["Admin"]}) || cd.CreatedBy == "" || cd.CreatedAt == "" {
			t.Errorf("user %s = %s", name, u.CustomData)
		}
	}
	wantScopes := map[string][]string{
		"Owner": {"destroy:customers", "destroy:distributors", "destroy:resellers", "manage:customers",
			"manage:distributors", "manage:resellers", "read:customers", "read:distributors", "read:resellers"},
		"Distributor": {"manage:customers", "manage:resellers", "read:customers", "read:resellers"},
		"Reseller":    {"manage:customers", "read:customers"},
		"Customer":    nil,
	}
	for role, want := range wantScopes {
		var scopes []logtotest.OrganizationScope
		must(t, a.get("/organization-roles/"+f.OrgRoles[role]+"/scopes"), http.StatusOK).json(t, &scopes)
		var got []string
		for _, sc := range scopes {
			got = append(got, sc.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s scopes = %v, want %v", role, got, want)
		}
	}
	for _, name := range []string{"Super Admin", "Admin", "Support", "Reader"} {
		if f.UserRoles[name] == "" {
			t.Errorf("user role %s missing", name)
		}
	}

	// The service app gets a token for logto-proxy's API with its scopes.
	res := must(t, tokenForm(t, s, url.Values{"grant_type": {"client_credentials"},
		"resource": {f.APIResource.Indicator}, "scope": {"read:customers read:resellers read:distributors read:users manage:users"}},
		f.ServiceApp.ID, f.ServiceApp.Secret), http.StatusOK)
	var tok tokenBody
	res.json(t, &tok)
	if f.APIResource.Indicator != logtotest.ProxyAPIIndicator || tok.Scope == nil ||
		*tok.Scope != "read:customers read:resellers read:distributors read:users" {
		t.Errorf("service token scope = %v", tok.Scope)
	}
}

func getOrg(t *testing.T, a *api, id string) logtotest.Organization {
	t.Helper()
	var o logtotest.Organization
	must(t, a.get("/organizations/"+id), http.StatusOK).json(t, &o)
	return o
}

func TestSeedBulk(t *testing.T) {
	opts := logtotest.BulkOptions{Distributors: 10, ResellersPerDistributor: 5, CustomersPerReseller: 4,
		CustomersPerDistributor: 2, UsersPerOrganization: 1, Seed: 7}
	s1 := newSim(t, logtotest.Options{Seed: 3})
	b1, err := s1.SeedBulk(opts)
	if err != nil {
		t.Fatal(err)
	}
	wantOrgs := 10 + 10*5 + 10*5*4 + 10*2
	if len(b1.Distributors) != 10 || len(b1.Resellers) != 50 || len(b1.Customers) != 220 || b1.Total() != wantOrgs {
		t.Errorf("sizes: %d %d %d", len(b1.Distributors), len(b1.Resellers), len(b1.Customers))
	}
	if s1.OrganizationCount() != wantOrgs+1 {
		t.Errorf("OrganizationCount = %d, want %d (Owner included)", s1.OrganizationCount(), wantOrgs+1)
	}
	if len(b1.Users) != wantOrgs+1 {
		t.Errorf("users = %d", len(b1.Users))
	}
	if len(b1.Suspended) == 0 || len(b1.Deleted) == 0 || len(b1.Rebranding) == 0 {
		t.Errorf("no sprinkling: %d suspended, %d deleted, %d rebranding", len(b1.Suspended), len(b1.Deleted), len(b1.Rebranding))
	}

	// Same seeds, same data, same order.
	s2 := newSim(t, logtotest.Options{Seed: 3})
	b2, err := s2.SeedBulk(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b1.Customers, b2.Customers) || !slices.Equal(b1.Suspended, b2.Suspended) ||
		!slices.Equal(s1.OrganizationIDs(), s2.OrganizationIDs()) {
		t.Errorf("SeedBulk is not deterministic")
	}
	o1, _ := s1.Organization(b1.Customers[17])
	o2, _ := s2.Organization(b2.Customers[17])
	if string(o1.CustomData) != string(o2.CustomData) || o1.Name != o2.Name || o1.CreatedAt != o2.CreatedAt {
		t.Errorf("customData differs:\n%s\n%s", o1.CustomData, o2.CustomData)
	}
	s3 := newSim(t, logtotest.Options{Seed: 4})
	b3, err := s3.SeedBulk(opts)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(b1.Customers, b3.Customers) {
		t.Errorf("another seed gave the same ids")
	}

	// Parent links and flags, read through the API.
	a := newAPI(t, s1)
	parentOf := map[string]string{}
	for _, d := range b1.Distributors {
		parentOf[d] = b1.OwnerID
	}
	suspended := map[string]bool{}
	for _, id := range b1.Suspended {
		suspended[id] = true
	}
	seen := 0
	for page := 1; ; page++ {
		var orgs []logtotest.Organization
		must(t, a.get("/organizations?page_size=100&page="+itoa(page)), http.StatusOK).json(t, &orgs)
		if len(orgs) == 0 {
			break
		}
		for _, o := range orgs {
			seen++
			var cd struct {
				Type, CreatedBy, SuspendedAt string
				CreatedByUser                *struct {
					UserID string `json:"user_id"`
				}
			}
			if err := json.Unmarshal(o.CustomData, &cd); err != nil {
				t.Fatal(err)
			}
			if o.ID == b1.OwnerID {
				continue
			}
			if cd.Type == "" || cd.CreatedBy == "" || cd.CreatedByUser == nil || cd.CreatedByUser.UserID == "" {
				t.Errorf("%s: customData %s", o.Name, o.CustomData)
			}
			if want, ok := parentOf[o.ID]; ok && cd.CreatedBy != want {
				t.Errorf("%s: createdBy %s, want %s", o.Name, cd.CreatedBy, want)
			}
			if suspended[o.ID] != (cd.SuspendedAt != "") {
				t.Errorf("%s: suspendedAt %q, listed suspended %v", o.Name, cd.SuspendedAt, suspended[o.ID])
			}
		}
	}
	if seen != wantOrgs+1 {
		t.Errorf("listed %d organizations", seen)
	}
	members := ids(t, must(t, a.get("/organizations/"+b1.Customers[0]+"/users"), http.StatusOK))
	if len(members) != 1 {
		t.Errorf("bulk customer members = %v", members)
	}
}

func TestSeedBulkUnderFixtureOwner(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	f, err := s.SeedFixture()
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SeedBulk(logtotest.BulkOptions{Distributors: 2, ResellersPerDistributor: 1, CustomersPerReseller: 1,
		SuspendedRatio: -1, DeletedRatio: -1, RebrandingRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	if b.OwnerID != f.Orgs["Owner"] {
		t.Errorf("bulk created a second Owner")
	}
	if len(b.Suspended)+len(b.Deleted)+len(b.Rebranding) != 0 {
		t.Errorf("negative ratios must disable the sprinkling")
	}
	if s.OrganizationCount() != 11+6 {
		t.Errorf("OrganizationCount = %d", s.OrganizationCount())
	}
}

// TestConcurrentUse runs readers, writers and fault switches together; run
// it with -race.
func TestConcurrentUse(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	rc := newReceiver(t)
	if _, err := s.CreateHook("h", rc.srv.URL, "Organization.Created", "Organization.Membership.Updated"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SeedBulk(logtotest.BulkOptions{Distributors: 5, ResellersPerDistributor: 4, CustomersPerReseller: 5}); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				o, err := s.CreateOrganization(map[string]any{"name": "c" + itoa(w*100+i)})
				if err != nil {
					t.Error(err)
					return
				}
				u, err := s.CreateUser(map[string]any{"username": "w" + itoa(w*100+i)})
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.AddOrganizationMembers(o.ID, u.ID); err != nil {
					t.Error(err)
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				if res := a.get("/organizations?page_size=50"); res.status != http.StatusOK {
					t.Errorf("list: %d", res.status)
				}
				if res := a.get("/users?page_size=20"); res.status != http.StatusOK {
					t.Errorf("users: %d", res.status)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			s.Faults().ReshuffleOrganizations()
			s.Faults().DriftTotalNumber(1, 1)
		}
	})
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(rc.deliveries()); got != 160 {
		t.Errorf("%d webhook deliveries, want 160", got)
	}
}
