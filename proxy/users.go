package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
)

// UsersConfig is what the user routes need beyond the hierarchy.
type UsersConfig struct {
	// View is the users view the user reads are answered from; without one
	// the user routes are not served.
	View *cache.UsersView
}

// Messages of the user reads (upstream-my-contract §1.4).
const (
	msgUsersListed     = "users retrieved successfully"
	msgUserRetrieved   = "user retrieved successfully"
	msgUserNotFound    = "user not found"
	msgUsersListFailed = "failed to list users"
	msgUserGetFailed   = "failed to get user"
)

// permImpersonateUsers is the permission whose holders get
// can_be_impersonated on list items (upstream-my-contract §2.10).
const permImpersonateUsers = "impersonate:users"

// userRoutes registers the user reads: /users and /users/{id}.
func (s *Server) userRoutes(g *echo.Group) {
	if s.cfg.Users.View == nil {
		return
	}
	g.GET("/users", s.listUsers)
	g.GET("/users/:id", s.getUser)
}

// listUsers is GET /users: gated on read:users (no self bypass, as
// upstream), scoped to the users of the caller's visible organizations.
func (s *Server) listUsers(c echo.Context) error {
	caller := callerOf(c)
	if !caller.Principal.Has(hierarchy.PermReadUsers) {
		return fail(c, http.StatusForbidden, msgInsufficientPermissions)
	}
	users, err := s.boundUsers(c)
	if err != nil {
		s.requestLogger(c).Error("users unavailable", slog.Any("error", err))
		return fail(c, http.StatusInternalServerError, msgUsersListFailed)
	}
	q := c.QueryParams()
	paging := ParsePaging(q)
	page := users.List(caller.Principal, cache.UserQuery{
		Search:          q.Get("search"),
		Status:          q["status"],
		RoleIDs:         q["role"],
		CreatedBy:       q["created_by"],
		OrganizationIDs: q["organization_id"],
		SortBy:          paging.SortBy,
		Desc:            paging.Desc,
		Page:            paging.Page,
		PageSize:        paging.PageSize,
	})
	shape := userShape{impersonation: caller.Principal.Has(permImpersonateUsers)}
	b := make([]byte, 0, 256+768*len(page.Users))
	b = appendEnvelopeHead(b, http.StatusOK, msgUsersListed)
	b = append(b, `{"users":[`...)
	for i := range page.Users {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendUser(b, &page.Users[i], shape)
	}
	b = append(b, `],"pagination":`...)
	b = appendPagination(b, NewPagination(paging, page.Total))
	b = append(b, '}')
	return answerJSON(c, appendEnvelopeTail(b))
}

// getUser is GET /users/{id} (a Logto user id): a caller may always read
// itself; anyone else needs read:users and the user in its scope. Out of
// scope and missing are the same 404, so that existence never leaks.
func (s *Server) getUser(c echo.Context) error {
	if moreSegments(c) {
		return echo.ErrNotFound
	}
	caller := callerOf(c)
	id, ok := pathID(c)
	self := ok && caller.User != nil && caller.User.LogtoUserID() == id
	if !self && !caller.Principal.Has(hierarchy.PermReadUsers) {
		return fail(c, http.StatusForbidden, msgInsufficientPermissions)
	}
	if !ok {
		return fail(c, http.StatusNotFound, msgUserNotFound)
	}
	users, err := s.boundUsers(c)
	if err != nil {
		s.requestLogger(c).Error("users unavailable", slog.Any("error", err))
		return fail(c, http.StatusInternalServerError, msgUserGetFailed)
	}
	var u cache.User
	if self {
		u, ok = users.Get(id)
	} else {
		u, ok = users.Find(caller.Principal, id)
	}
	if !ok {
		return fail(c, http.StatusNotFound, msgUserNotFound)
	}
	b := make([]byte, 0, 1024)
	b = appendEnvelopeHead(b, http.StatusOK, msgUserRetrieved)
	b = appendUser(b, &u, userShape{detail: true})
	return answerJSON(c, appendEnvelopeTail(b))
}

// boundUsers returns the users bound to the hierarchy the request reads, and
// marks the answer's X-Cache from both snapshots: STALE when either is past
// its hard TTL, MISS when the request waited for either, HIT otherwise.
func (s *Server) boundUsers(c echo.Context) (*cache.Users, error) {
	snap, err := s.snapshot(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), snapshotWait)
	defer cancel()
	us, err := s.cfg.Users.View.Current(ctx, snap.Tree)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	markCache(c, snap.Stale || us.Stale, snap.Waited || us.Waited)
	return us.Users, nil
}

// userShape says which optional members a user object carries.
type userShape struct {
	// detail is GET /users/{id}: the upstream's LocalUser, whose
	// organization and roles are omitted when empty and which carries
	// deleted_by_org_id (always null here: deleted users are not found).
	detail bool
	// impersonation adds can_be_impersonated (list items, for callers
	// holding impersonate:users).
	impersonation bool
}

// appendUser appends the upstream user object (upstream-my-contract §2.10),
// minus logto_synced_at, which has no source when Logto is the record.
//
// can_be_impersonated is always false: upstream it is the target's
// impersonation consent, kept in its database, and Logto holds no consent
// (the upstream also answers false for a user without a consent record).
func appendUser(b []byte, u *cache.User, shape userShape) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, UserUUID(u.ID))
	b = append(b, `,"logto_id":`...)
	b = appendString(b, u.ID)
	b = append(b, `,"username":`...)
	b = appendString(b, u.Username)
	b = append(b, `,"email":`...)
	b = appendString(b, u.Email)
	b = append(b, `,"name":`...)
	b = appendString(b, u.Name)
	b = append(b, `,"phone":`...)
	if u.Phone != nil {
		b = appendString(b, *u.Phone)
	} else {
		b = append(b, "null"...)
	}
	if o := u.Organization; o != nil || !shape.detail {
		b = append(b, `,"organization":`...)
		b = appendUserOrganization(b, o)
	}
	if len(u.Roles) > 0 || !shape.detail {
		b = append(b, `,"roles":[`...)
		for i, r := range u.Roles {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendString(b, r.ID)
			b = append(b, `,"name":`...)
			b = appendString(b, r.Name)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"custom_data":`...)
	b = appendRaw(b, u.CustomData)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, u.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, u.UpdatedAt)
	b = append(b, `,"latest_login_at":`...)
	b = appendTime(b, u.LastSignInAt)
	b = append(b, `,"deleted_at":`...)
	b = appendTime(b, u.DeletedAt)
	b = append(b, `,"suspended_at":`...)
	b = appendTime(b, u.SuspendedAt)
	b = append(b, `,"suspended_by_org_id":`...)
	b = appendNullableString(b, u.SuspendedByOrgID)
	if shape.detail {
		b = append(b, `,"deleted_by_org_id":null`...)
	}
	b = append(b, `,"created_by":`...)
	if u.CreatedBy != nil {
		b = appendCreator(b, u.CreatedBy)
	} else {
		b = append(b, "null"...)
	}
	if shape.impersonation && !shape.detail {
		b = append(b, `,"can_be_impersonated":false`...)
	}
	return append(b, '}')
}

// appendUserOrganization appends {id, logto_id, name, type}, or null.
func appendUserOrganization(b []byte, o *cache.UserOrganization) []byte {
	if o == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"id":"`...)
	b = o.ID.AppendText(b)
	b = append(b, `","logto_id":`...)
	b = appendString(b, o.LogtoID)
	b = append(b, `,"name":`...)
	b = appendString(b, o.Name)
	b = append(b, `,"type":`...)
	b = appendString(b, o.Type.String())
	return append(b, '}')
}

// UserSourceConfig bounds the users view's source (see UserSource).
type UserSourceConfig struct {
	// MembershipLookups bounds how many users without a customData
	// organizationId one rebuild looks up the memberships of (default 500;
	// negative: none).
	MembershipLookups int
	// LookupParallelism is how many of those lookups run at once (default
	// 4); the client's own concurrency bound still applies.
	LookupParallelism int
	// Logger receives the source's logs (default slog.Default()).
	Logger *slog.Logger
	// Now dates the lookups (default time.Now).
	Now func() time.Time
}

// UserSource is the users view's source: every Logto user, with its global
// roles named from one listing of the roles, and its home organization —
// customData.organizationId, which the upstream writes on every user it
// creates, else the user's first organization membership (the upstream's
// sync rule). A membership costs one request per user, so each rebuild
// looks up at most MembershipLookups of them, users never looked up first,
// then those looked up longest ago; every other user keeps what prev (the
// records served now) found for it. A lookup that fails keeps the earlier
// answer too, and is retried first next time. The users and roles listings
// must succeed: a listing that does not reconcile fails the rebuild, and
// the view keeps serving its previous snapshot.
func UserSource(c *logto.Client, cfg UserSourceConfig) func(ctx context.Context, prev []cache.UserRecord) ([]cache.UserRecord, error) {
	if cfg.MembershipLookups == 0 {
		cfg.MembershipLookups = 500
	}
	if cfg.LookupParallelism <= 0 {
		cfg.LookupParallelism = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return func(ctx context.Context, prev []cache.UserRecord) ([]cache.UserRecord, error) {
		var users []logto.User
		var roles []logto.Role
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() (err error) {
			users, err = c.ListUsers(gctx)
			return err
		})
		g.Go(func() (err error) {
			roles, err = c.ListRoles(gctx)
			return err
		})
		if err := g.Wait(); err != nil {
			return nil, fmt.Errorf("list users and roles: %w", err)
		}
		names := make(map[string]string, len(roles))
		for _, r := range roles {
			names[r.ID] = r.Name
		}
		records := make([]cache.UserRecord, len(users))
		for i := range users {
			records[i] = UserRecordFrom(users[i], names)
		}
		if err := resolveHomes(ctx, c, cfg, records, prev); err != nil {
			return nil, err
		}
		return records, nil
	}
}

// resolveHomes finds the home organization of the records whose customData
// names none, within the configured bound (see UserSource).
func resolveHomes(ctx context.Context, c *logto.Client, cfg UserSourceConfig, records, prev []cache.UserRecord) error {
	before := make(map[string]*cache.UserRecord, len(prev))
	for i := range prev {
		before[prev[i].ID] = &prev[i]
	}
	var need []*cache.UserRecord
	for i := range records {
		r := &records[i]
		if r.HomeSource == cache.HomeCustomData {
			continue
		}
		if p, ok := before[r.ID]; ok && p.HomeSource != cache.HomeCustomData {
			r.HomeOrgID, r.HomeSource, r.HomeCheckedAt = p.HomeOrgID, p.HomeSource, p.HomeCheckedAt
		}
		need = append(need, r)
	}
	slices.SortFunc(need, func(a, b *cache.UserRecord) int {
		if c := a.HomeCheckedAt.Compare(b.HomeCheckedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	need = need[:min(len(need), max(cfg.MembershipLookups, 0))]
	if len(need) == 0 {
		return nil
	}
	var g errgroup.Group
	g.SetLimit(cfg.LookupParallelism)
	failed := make([]bool, len(need))
	for i, r := range need {
		g.Go(func() error {
			orgs, err := c.UserOrganizations(ctx, r.ID)
			switch {
			case errors.Is(err, logto.ErrNotFound): // deleted since the listing
			case err != nil:
				failed[i] = true
				return nil
			}
			r.HomeOrgID, r.HomeSource, r.HomeCheckedAt = "", cache.HomeNone, cfg.Now()
			if len(orgs) > 0 {
				r.HomeOrgID, r.HomeSource = orgs[0].ID, cache.HomeMembership
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("look up home organizations: %w", err)
	}
	if n := countFailed(failed); n > 0 {
		cfg.Logger.Warn("home organization lookups failed; earlier answers kept", "failed", n, "looked_up", len(need))
	}
	return nil
}

func countFailed(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// UserRecordFrom converts one Logto user into the users view's record,
// reading the customData keys the upstream writes: organizationId (the
// home organization), userRoleIds (named from roleNames, id → name; ids
// naming no role are left out) and createdBy (a creator snapshot, or the
// creating organization's id). The home is left unset when customData names
// none: callers applying a webhook keep the one the previous record had.
func UserRecordFrom(u logto.User, roleNames map[string]string) cache.UserRecord {
	r := cache.UserRecord{
		ID:         u.ID,
		Username:   stringOrEmpty(u.Username),
		Email:      stringOrEmpty(u.PrimaryEmail),
		Name:       stringOrEmpty(u.Name),
		Phone:      u.PrimaryPhone,
		CustomData: userCustomData(u.CustomData),
		CreatedAt:  time.UnixMilli(u.CreatedAt).UTC(),
		UpdatedAt:  time.UnixMilli(u.UpdatedAt).UTC(),
		Suspended:  u.IsSuspended,
	}
	if u.LastSignInAt != nil {
		r.LastSignInAt = time.UnixMilli(*u.LastSignInAt).UTC()
	}
	if org, ok := u.CustomData["organizationId"].(string); ok && org != "" {
		r.HomeOrgID, r.HomeSource = org, cache.HomeCustomData
	}
	if ids, ok := u.CustomData["userRoleIds"].([]any); ok {
		for _, v := range ids {
			id, _ := v.(string)
			name, known := roleNames[id]
			if known && !slices.ContainsFunc(r.Roles, func(x cache.RoleRef) bool { return x.ID == id }) {
				r.Roles = append(r.Roles, cache.RoleRef{ID: id, Name: name})
			}
		}
	}
	switch cb := u.CustomData["createdBy"].(type) {
	case string:
		r.CreatedByOrgID = cb
	case map[string]any:
		r.CreatedBy = userCreatorFrom(cb)
	}
	return r
}

// userCreatorFrom reads a creator snapshot object; non-string fields read as "".
func userCreatorFrom(m map[string]any) *hierarchy.Creator {
	str := func(k string) string { s, _ := m[k].(string); return s }
	onBehalf, _ := m["on_behalf_of"].(bool)
	return &hierarchy.Creator{
		UserID: str("user_id"), Username: str("username"), Name: str("name"), Email: str("email"),
		OrganizationID: str("organization_id"), OrganizationName: str("organization_name"), OnBehalfOf: onBehalf,
	}
}

// userCustomData encodes a user's customData back to JSON ({} when absent).
// It was decoded with json.Number, so numbers come back exactly as Logto
// sent them.
func userCustomData(m map[string]any) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage(`{}`)
	}
	raw, err := json.Marshal(m)
	if err != nil { // cannot happen for decoded JSON; serve an empty object rather than fail a rebuild
		return json.RawMessage(`{}`)
	}
	return raw
}

// stringOrEmpty reads one of Logto's nullable strings, "" for null.
func stringOrEmpty(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
