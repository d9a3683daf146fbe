package logtotest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// orgFields is a validated organization body (create or patch). A nil field
// was absent; description and customCss distinguish null (set) from absent.
type orgFields struct {
	name                   *string
	description, customCSS *string
	hasDescription, hasCSS bool
	customData             json.RawMessage
	color, branding        json.RawMessage
	isMfaRequired          *bool
}

// parseOrgFields validates an organization body; create requires a name.
func parseOrgFields(body []byte, create bool) (orgFields, error) {
	g := newGuard(body)
	var f orgFields
	f.name, _ = g.str("name", create, false, 1, 128)
	f.description, f.hasDescription = g.str("description", false, true, 0, 256)
	f.customCSS, f.hasCSS = g.str("customCss", false, true, 0, 0)
	f.customData, _ = g.object("customData", false)
	f.color, _ = g.object("color", false)
	f.branding, _ = g.object("branding", false)
	if v, ok := g.boolean("isMfaRequired", false); ok {
		f.isMfaRequired = &v
	}
	return f, g.err()
}

// apply writes the present fields onto o.
func (f orgFields) apply(o *Organization) {
	if f.name != nil {
		o.Name = *f.name
	}
	if f.hasDescription {
		o.Description = f.description
	}
	if f.hasCSS {
		o.CustomCSS = f.customCSS
	}
	if f.customData != nil {
		o.CustomData = f.customData
	}
	if f.color != nil {
		o.Color = f.color
	}
	if f.branding != nil {
		o.Branding = f.branding
	}
	if f.isMfaRequired != nil {
		o.IsMfaRequired = *f.isMfaRequired
	}
}

func newOrgEntry(o Organization) *orgEntry {
	return &orgEntry{
		org:       o,
		nameLower: strings.ToLower(o.Name),
		members:   make(map[string]map[string]struct{}),
		apps:      make(map[string]map[string]struct{}),
	}
}

func idParams(id string) params { return params{{"id", id}} }

// createOrganization is POST /api/organizations.
func (s *Server) createOrganization(c caller, body []byte) (Organization, []hookEvent, error) {
	f, err := parseOrgFields(body, true)
	if err != nil {
		return Organization{}, nil, err
	}
	s.data.mu.Lock()
	o := Organization{
		TenantID: tenantID, ID: s.data.newID(), CustomData: emptyObject(),
		Color: emptyObject(), Branding: emptyObject(), CreatedAt: s.clock().UnixMilli(),
	}
	f.apply(&o)
	s.data.insertOrg(newOrgEntry(o))
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventOrganizationCreated, http.MethodPost, "/organizations", "/organizations",
		http.StatusCreated, nil).withData(o)
	return o, []hookEvent{ev}, nil
}

// patchOrganization is PATCH /api/organizations/{id}: present fields are
// replaced, jsonb fields (customData, color, branding) wholesale.
func (s *Server) patchOrganization(c caller, id string, body []byte) (Organization, []hookEvent, error) {
	f, err := parseOrgFields(body, false)
	if err != nil {
		return Organization{}, nil, err
	}
	s.data.mu.Lock()
	e := s.data.orgs[id]
	if e == nil {
		s.data.mu.Unlock()
		return Organization{}, nil, errOrgNotFound(id)
	}
	o := e.org
	f.apply(&o)
	e.org = o
	e.nameLower = strings.ToLower(o.Name)
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventOrganizationDataUpdated, http.MethodPatch, "/organizations/"+id,
		"/organizations/:id", http.StatusOK, idParams(id)).withData(o)
	return o, []hookEvent{ev}, nil
}

// deleteOrganization is DELETE /api/organizations/{id}; memberships go
// silently.
func (s *Server) deleteOrganization(c caller, id string) ([]hookEvent, error) {
	s.data.mu.Lock()
	e := s.data.orgs[id]
	if e == nil {
		s.data.mu.Unlock()
		return nil, errOrgNotFound(id)
	}
	s.data.removeOrg(e)
	s.data.mu.Unlock()
	ev := s.newEvent(c, EventOrganizationDeleted, http.MethodDelete, "/organizations/"+id,
		"/organizations/:id", http.StatusNoContent, idParams(id))
	return []hookEvent{ev}, nil
}

// featuredUser is an entry of featuredUsers (showFeatured=true).
type featuredUser struct {
	ID     string  `json:"id"`
	Avatar *string `json:"avatar"`
	Name   *string `json:"name"`
}

// featuredOrganization is a list item with showFeatured=true.
type featuredOrganization struct {
	Organization
	UsersCount    int            `json:"usersCount"`
	FeaturedUsers []featuredUser `json:"featuredUsers"`
}

// handleListOrganizations is GET /api/organizations: mandatory pagination,
// q over id and name, Postgres heap order, and the listing faults.
func (s *Server) handleListOrganizations(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	query := r.URL.Query()
	plan := s.faults.organizationListPlan(p.number)
	if plan.reshuffle {
		s.shuffleOrganizations()
	}

	s.data.mu.RLock()
	matched := s.data.orgOrder
	if q := query.Get("q"); q != "" {
		match := lowerLikeMatcher("%" + q + "%")
		matched = nil
		for _, e := range s.data.orgOrder {
			if match(e.org.ID) || match(e.nameLower) {
				matched = append(matched, e)
			}
		}
	}
	total := len(matched)
	from, to := p.window(total)
	if plan.duplicate && from > 0 {
		from, to = from-1, to-1
	}
	window := matched[from:to]
	if plan.short && len(window) > 0 {
		window = window[:len(window)-1]
	}
	var body any
	if isTruthy(query.Get("showFeatured")) {
		items := make([]featuredOrganization, len(window))
		for i, e := range window {
			items[i] = featuredOrganization{Organization: e.org, UsersCount: len(e.members),
				FeaturedUsers: s.featuredUsers(e)}
		}
		body = items
	} else {
		items := make([]Organization, len(window))
		for i, e := range window {
			items[i] = e.org
		}
		body = items
	}
	s.data.mu.RUnlock()

	setPageHeaders(w, r, p, max(total+plan.totalDelta, 0))
	s.writeJSON(w, r, http.StatusOK, body)
}

// featuredUsers returns up to three members (lowest ids first). Callers hold
// a lock.
func (s *Server) featuredUsers(e *orgEntry) []featuredUser {
	ids := make([]string, 0, len(e.members))
	for id := range e.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]featuredUser, 0, 3)
	for _, id := range ids {
		if len(out) == 3 {
			break
		}
		if u := s.data.users[id]; u != nil {
			out = append(out, featuredUser{ID: id, Avatar: u.user.Avatar, Name: u.user.Name})
		}
	}
	return out
}

func (s *Server) organizationRoutes() {
	s.api("GET /api/organizations", s.handleListOrganizations)
	s.api("POST /api/organizations", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		o, events, err := s.createOrganization(callerOf(r), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusCreated, o)
		s.emitAfter(w, events...)
	})
	s.api("GET /api/organizations/{id}", func(w http.ResponseWriter, r *http.Request) {
		o, ok := s.Organization(r.PathValue("id"))
		if !ok {
			s.writeError(w, r, errOrgNotFound(r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, o)
	})
	s.api("PATCH /api/organizations/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		o, events, err := s.patchOrganization(callerOf(r), r.PathValue("id"), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, o)
		s.emitAfter(w, events...)
	})
	s.api("DELETE /api/organizations/{id}", func(w http.ResponseWriter, r *http.Request) {
		events, err := s.deleteOrganization(callerOf(r), r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusNoContent)
		s.emitAfter(w, events...)
	})
}

// marshalBody turns an in-process helper's argument (a map, a struct or raw
// JSON bytes) into the request body the HTTP route would have received.
func marshalBody(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case json.RawMessage:
		return b, nil
	case string:
		return []byte(b), nil
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return body, nil
}

// CreateOrganization creates an organization exactly as
// POST /api/organizations does (same validation, same webhook), from fields
// such as map[string]any{"name": "Acme", "customData": map[string]any{...}}.
func (s *Server) CreateOrganization(fields any) (Organization, error) {
	body, err := marshalBody(fields)
	if err != nil {
		return Organization{}, fmt.Errorf("create organization: %w", err)
	}
	o, events, err := s.createOrganization(inProcess(), body)
	if err != nil {
		return Organization{}, err
	}
	s.emit(events...)
	return o, nil
}

// UpdateOrganization patches an organization exactly as
// PATCH /api/organizations/{id} does: customData is replaced wholesale.
func (s *Server) UpdateOrganization(id string, fields any) (Organization, error) {
	body, err := marshalBody(fields)
	if err != nil {
		return Organization{}, fmt.Errorf("update organization: %w", err)
	}
	o, events, err := s.patchOrganization(inProcess(), id, body)
	if err != nil {
		return Organization{}, err
	}
	s.emit(events...)
	return o, nil
}

// DeleteOrganization deletes an organization as DELETE /api/organizations/{id}.
func (s *Server) DeleteOrganization(id string) error {
	events, err := s.deleteOrganization(inProcess(), id)
	if err != nil {
		return err
	}
	s.emit(events...)
	return nil
}

// Organization returns an organization by id.
func (s *Server) Organization(id string) (Organization, bool) {
	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	e := s.data.orgs[id]
	if e == nil {
		return Organization{}, false
	}
	return e.org, true
}

// OrganizationCount returns how many organizations the tenant holds.
func (s *Server) OrganizationCount() int {
	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	return len(s.data.orgs)
}

// OrganizationIDs returns every organization id in listing order.
func (s *Server) OrganizationIDs() []string {
	s.data.mu.RLock()
	defer s.data.mu.RUnlock()
	ids := make([]string, len(s.data.orgOrder))
	for i, e := range s.data.orgOrder {
		ids[i] = e.org.ID
	}
	return ids
}
