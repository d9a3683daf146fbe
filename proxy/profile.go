package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
)

// Profile is a user's session profile as the login exchange builds it from
// the Management API, cached per Logto user id so that a login or a refresh
// does not cost Logto six calls. FetchedAt lets owners' profiles expire
// sooner than the cache's TTL.
type Profile struct {
	User      SessionUser `json:"user"`
	FetchedAt time.Time   `json:"fetched_at"`
}

// ProfilesConfig configures Profiles.
type ProfilesConfig struct {
	// Logto is where profiles are read from.
	Logto *logto.Client
	// Loader configures the read-through cache (Client, Prefix, Logger,
	// Observer, timeouts). Namespace, Fetch and the TTLs are set by
	// NewProfiles.
	Loader cache.LoaderConfig[Profile]
	// TTL is how long a profile is cached (default 10m, the upstream's);
	// OwnerTTL is the shorter life of an Owner's profile (default 1m), whose
	// permissions matter most.
	TTL, OwnerTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ProfileNamespace is the cache namespace of profiles (Redis keys
// <prefix>profile:<logto user id>).
const ProfileNamespace = "profile"

// Profiles reads session profiles through the cache: Redis, then one
// Management API read per user at a time (singleflight), with misses
// remembered briefly. Permission changes in Logto reach sessions when the
// cached profile expires (or is invalidated) and the user exchanges or
// refreshes.
type Profiles struct {
	loader   *cache.Loader[Profile]
	ownerTTL time.Duration
	now      func() time.Time
}

// NewProfiles builds the cached profile reader.
func NewProfiles(cfg ProfilesConfig) (*Profiles, error) {
	if cfg.Logto == nil {
		return nil, errors.New("proxy: profiles: Logto is required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.OwnerTTL <= 0 {
		cfg.OwnerTTL = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lc := cfg.Loader
	lc.Namespace = ProfileNamespace
	lc.Fetch = ProfileSource(cfg.Logto, cfg.Now)
	lc.SoftTTL, lc.HardTTL = cfg.TTL, cfg.TTL
	lc.Now = cfg.Now
	loader, err := cache.NewLoader(lc)
	if err != nil {
		return nil, fmt.Errorf("proxy: profiles: %w", err)
	}
	return &Profiles{loader: loader, ownerTTL: cfg.OwnerTTL, now: cfg.Now}, nil
}

// Get returns the session user of a Logto user id; an error wrapping
// cache.ErrNotFound when Logto does not know the user.
func (p *Profiles) Get(ctx context.Context, logtoUserID string) (SessionUser, error) {
	prof, err := p.loader.Get(ctx, logtoUserID)
	if err == nil && prof.User.OrgRole == hierarchy.RoleOwner.String() && p.now().Sub(prof.FetchedAt) > p.ownerTTL {
		// A failed invalidation means Redis is unreachable (the loader counts
		// it); the Get below then cannot read the stale entry and asks Logto.
		_ = p.loader.Invalidate(ctx, logtoUserID)
		prof, err = p.loader.Get(ctx, logtoUserID)
	}
	if err != nil {
		return SessionUser{}, err
	}
	return prof.User, nil
}

// Invalidate drops a user's cached profile (logout; a webhook announcing a
// change to the user), so that the next exchange or refresh reads Logto.
func (p *Profiles) Invalidate(ctx context.Context, logtoUserID string) error {
	return p.loader.Invalidate(ctx, logtoUserID)
}

// ProfileSource reads one user's profile from the Management API exactly as
// the upstream's exchange does (upstream-my-contract §3.1 step 3): the user;
// its global roles, their names, ids and scopes (user_permissions); its
// first organization (organization_id, organization_name); the first
// organization role held there (org_role, capitalised, and org_role_id) and
// that role's scopes (org_permissions); duplicates removed; and the Reader
// exception (§2.12). A user Logto does not know is cache.ErrNotFound. Any
// other failure fails the whole read: a profile built from a partial answer
// would carry the wrong permissions.
func ProfileSource(c *logto.Client, now func() time.Time) func(ctx context.Context, logtoUserID string) (Profile, error) {
	return func(ctx context.Context, id string) (Profile, error) {
		r, err := readProfile(ctx, c, id)
		if err != nil {
			return Profile{}, err
		}
		return Profile{User: r.user(id), FetchedAt: now()}, nil
	}
}

// profileReads is everything the Management API said about one user.
type profileReads struct {
	account    logto.User
	roles      []logto.Role
	roleScopes [][]logto.Scope // parallel to roles
	orgs       []logto.UserOrganization
	orgRoles   []logto.OrganizationRole // in the first organization
	orgScopes  []logto.OrganizationScope
}

// profileParallelism bounds the concurrent reads of one profile.
const profileParallelism = 4

func readProfile(ctx context.Context, c *logto.Client, id string) (*profileReads, error) {
	r := &profileReads{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { r.account, err = c.GetUser(gctx, id, false); return err })
	g.Go(func() (err error) { r.roles, err = c.UserRoles(gctx, id); return err })
	g.Go(func() (err error) { r.orgs, err = c.UserOrganizations(gctx, id); return err })
	if err := g.Wait(); err != nil {
		if errors.Is(err, logto.ErrNotFound) {
			return nil, fmt.Errorf("profile of %s: %w: %w", id, cache.ErrNotFound, err)
		}
		return nil, fmt.Errorf("profile of %s: %w", id, err)
	}

	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(profileParallelism)
	r.roleScopes = make([][]logto.Scope, len(r.roles))
	for i, role := range r.roles {
		g.Go(func() (err error) { r.roleScopes[i], err = c.RoleScopes(gctx, role.ID); return err })
	}
	if len(r.orgs) > 0 {
		g.Go(func() error {
			roles, err := c.MemberOrganizationRoles(gctx, r.orgs[0].ID, id)
			if err != nil || len(roles) == 0 {
				return err
			}
			r.orgRoles = roles
			r.orgScopes, err = c.OrganizationRoleScopes(gctx, roles[0].ID)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("profile of %s: roles and scopes: %w", id, err)
	}
	return r, nil
}

// user assembles the session user from the reads.
func (r *profileReads) user(id string) SessionUser {
	logtoID := id
	u := SessionUser{
		ID:              UserUUID(id),
		LogtoID:         &logtoID,
		Username:        deref(r.account.Username),
		Email:           deref(r.account.PrimaryEmail),
		Name:            deref(r.account.Name),
		UserRoles:       []string{},
		UserRoleIDs:     []string{},
		UserPermissions: []string{},
		OrgPermissions:  []string{},
	}
	if p := deref(r.account.PrimaryPhone); p != "" {
		u.Phone = &p
	}
	for i, role := range r.roles {
		u.UserRoles = append(u.UserRoles, role.Name)
		u.UserRoleIDs = append(u.UserRoleIDs, role.ID)
		for _, s := range r.roleScopes[i] {
			u.UserPermissions = append(u.UserPermissions, s.Name)
		}
	}
	if len(r.orgs) > 0 {
		u.OrganizationID, u.OrganizationName = r.orgs[0].ID, r.orgs[0].Name
	}
	if len(r.orgRoles) > 0 {
		u.OrgRole, u.OrgRoleID = capitalRole(r.orgRoles[0].Name), r.orgRoles[0].ID
		for _, s := range r.orgScopes {
			u.OrgPermissions = append(u.OrgPermissions, s.Name)
		}
	}
	u.UserPermissions = dedupe(u.UserPermissions)
	u.OrgPermissions = dedupe(u.OrgPermissions)
	if slices.ContainsFunc(u.UserRoles, func(r string) bool { return strings.EqualFold(r, readerRole) }) {
		u.OrgPermissions = slices.DeleteFunc(u.OrgPermissions, func(p string) bool { return slices.Contains(readerStripped, p) })
	}
	return u
}

// The Reader exception (upstream-my-contract §2.12): a user holding the
// Reader role loses these organization permissions, whatever its
// organization role grants.
const readerRole = "Reader"

var readerStripped = []string{"manage:distributors", "manage:resellers", "manage:customers"}

// capitalRole is the upstream's `org_role`: the four known roles capitalised
// ("Owner" …) whatever their case in Logto, any other name as it is.
func capitalRole(name string) string {
	if r := hierarchy.ParseRole(name); r != hierarchy.RoleNone {
		return r.String()
	}
	return name
}

// dedupe removes repeated strings, keeping the first of each.
func dedupe(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
