package logtotest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Webhook events the simulator emits (logto-contract.md §5.1).
const (
	EventOrganizationCreated           = "Organization.Created"
	EventOrganizationDeleted           = "Organization.Deleted"
	EventOrganizationDataUpdated       = "Organization.Data.Updated"
	EventOrganizationMembershipUpdated = "Organization.Membership.Updated"
	EventUserCreated                   = "User.Created"
	EventUserDeleted                   = "User.Deleted"
	EventUserDataUpdated               = "User.Data.Updated"
	EventUserSuspensionStatusUpdated   = "User.SuspensionStatus.Updated"
)

// SignatureHeader carries the hex HMAC-SHA256 of a webhook body under the
// hook's signing key.
const SignatureHeader = "logto-signature-sha-256"

// webhookUserAgent is the user-agent of every webhook delivery.
const webhookUserAgent = "Logto (https://logto.io/)"

// membershipDeltaCap caps each delta array of a membership event.
const membershipDeltaCap = 5000

// knownHookEvent reports whether Logto accepts event in a hook's events.
func knownHookEvent(event string) bool {
	switch event {
	case "PostRegister", "PostSignIn", "PostSignInAdaptiveMfaTriggered", "PostResetPassword",
		EventUserCreated, EventUserDeleted, EventUserDataUpdated, EventUserSuspensionStatusUpdated,
		"Role.Created", "Role.Deleted", "Role.Data.Updated", "Role.Scopes.Updated",
		"Scope.Created", "Scope.Deleted", "Scope.Data.Updated",
		EventOrganizationCreated, EventOrganizationDeleted, EventOrganizationDataUpdated,
		EventOrganizationMembershipUpdated,
		"OrganizationRole.Created", "OrganizationRole.Deleted", "OrganizationRole.Data.Updated",
		"OrganizationRole.Scopes.Updated",
		"OrganizationScope.Created", "OrganizationScope.Deleted", "OrganizationScope.Data.Updated",
		"Identifier.Lockout", "Message.RateLimited", "Grant.LimitExceeded":
		return true
	}
	return false
}

// Sign returns the logto-signature-sha-256 value of body under signingKey:
// lowercase hex HMAC-SHA256. Receivers in tests use it to check deliveries.
func Sign(signingKey string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(signingKey))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// caller identifies who made a change: the request's user agent and IP, or
// the in-process helpers.
type caller struct {
	userAgent, ip string
}

// inProcess is the caller of the in-process helpers.
func inProcess() caller { return caller{userAgent: "logtotest (in-process)", ip: "127.0.0.1"} }

func callerOf(r *http.Request) caller {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return caller{userAgent: r.UserAgent(), ip: ip}
}

// params is a route's path parameters, encoded as a JSON object in route
// order.
type params []queryPair

// MarshalJSON encodes the parameters as an object keeping their order.
func (p params) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(kv.key)
		if err != nil {
			return nil, fmt.Errorf("encode param name: %w", err)
		}
		v, err := json.Marshal(kv.value)
		if err != nil {
			return nil, fmt.Errorf("encode param value: %w", err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// hookEvent is one data event, before it is addressed to a hook.
type hookEvent struct {
	event        string
	caller       caller
	createdAt    time.Time
	path, method string
	status       int
	params       params
	matchedRoute string
	data         json.RawMessage // nil: no data key

	organizationID        string
	addedUserIDs          []string
	removedUserIDs        []string
	addedApplicationIDs   []string
	removedApplicationIDs []string
}

// hookPayload is the JSON body of a data hook, keys in Logto's order
// (logto-contract.md §5.2).
type hookPayload struct {
	Event                 string          `json:"event"`
	CreatedAt             string          `json:"createdAt"`
	UserAgent             string          `json:"userAgent,omitempty"`
	IP                    string          `json:"ip"`
	Path                  string          `json:"path"`
	Method                string          `json:"method"`
	Status                int             `json:"status"`
	Params                params          `json:"params"`
	MatchedRoute          string          `json:"matchedRoute"`
	Data                  json.RawMessage `json:"data,omitempty"`
	OrganizationID        string          `json:"organizationId,omitempty"`
	AddedUserIDs          []string        `json:"addedUserIds,omitempty"`
	RemovedUserIDs        []string        `json:"removedUserIds,omitempty"`
	AddedApplicationIDs   []string        `json:"addedApplicationIds,omitempty"`
	RemovedApplicationIDs []string        `json:"removedApplicationIds,omitempty"`
	HookID                string          `json:"hookId"`
}

func capDelta(ids []string) []string {
	if len(ids) > membershipDeltaCap {
		return ids[:membershipDeltaCap]
	}
	return ids
}

func (e hookEvent) payload(hookID string) hookPayload {
	p := hookPayload{
		Event:          e.event,
		CreatedAt:      e.createdAt.UTC().Format("2006-01-02T15:04:05.000Z"),
		UserAgent:      e.caller.userAgent,
		IP:             e.caller.ip,
		Path:           e.path,
		Method:         e.method,
		Status:         e.status,
		Params:         e.params,
		MatchedRoute:   e.matchedRoute,
		Data:           e.data,
		OrganizationID: e.organizationID,
		HookID:         hookID,
	}
	if p.Params == nil {
		p.Params = params{}
	}
	p.AddedUserIDs = capDelta(e.addedUserIDs)
	p.RemovedUserIDs = capDelta(e.removedUserIDs)
	p.AddedApplicationIDs = capDelta(e.addedApplicationIDs)
	p.RemovedApplicationIDs = capDelta(e.removedApplicationIDs)
	return p
}

// dispatcher delivers webhooks like Logto: once, asynchronously, with bounded
// concurrency and a per-delivery timeout, never retried, in no particular
// order.
type dispatcher struct {
	log     *slog.Logger
	faults  *Faults
	client  *http.Client
	timeout time.Duration
	sem     chan struct{}

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newDispatcher(log *slog.Logger, faults *Faults, concurrency int, timeout time.Duration) *dispatcher {
	if concurrency <= 0 {
		concurrency = 10
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &dispatcher{
		log:     log,
		faults:  faults,
		client:  &http.Client{Timeout: timeout},
		timeout: timeout,
		sem:     make(chan struct{}, concurrency),
	}
}

// send queues one delivery; it never blocks the caller.
func (d *dispatcher) send(h Hook, body []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.sem <- struct{}{}
		defer func() { <-d.sem }()
		d.post(h, body)
	}()
}

func (d *dispatcher) post(h Hook, body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Config.URL, bytes.NewReader(body))
	if err != nil {
		d.log.Warn("logtotest: webhook request", "hook", h.ID, "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhookUserAgent)
	for k, v := range h.Config.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set(SignatureHeader, Sign(h.SigningKey, body))
	resp, err := d.client.Do(req)
	if err != nil {
		d.log.Info("logtotest: webhook delivery failed", "hook", h.ID, "err", err)
		return
	}
	_ = resp.Body.Close()
	d.log.Debug("logtotest: webhook delivered", "hook", h.ID, "status", resp.StatusCode)
}

// wait stops accepting deliveries and waits for those in flight.
func (d *dispatcher) wait() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.wg.Wait()
}

// emit addresses events to every enabled hook subscribed to them and queues
// the deliveries. It is called after the API response has been written.
func (s *Server) emit(events ...hookEvent) {
	if len(events) == 0 {
		return
	}
	if s.faults.webhooksDropped() {
		s.log.Debug("logtotest: webhooks dropped", "events", len(events))
		return
	}
	s.data.mu.RLock()
	hooks := make([]Hook, 0, len(s.data.hooks))
	for _, h := range s.data.hooks {
		if h.Enabled {
			hooks = append(hooks, *h)
		}
	}
	s.data.mu.RUnlock()
	for _, ev := range events {
		for _, h := range hooks {
			if !slices.Contains(h.Events, ev.event) && (h.Event == nil || *h.Event != ev.event) {
				continue
			}
			body, err := encodeJSON(ev.payload(h.ID))
			if err != nil {
				s.log.Error("logtotest: encode webhook", "event", ev.event, "err", err)
				continue
			}
			s.hooks.send(h, body)
		}
	}
}

// emitAfter flushes the API response to the client, then emits: Logto
// fires hooks after it has answered.
func (s *Server) emitAfter(w http.ResponseWriter, events ...hookEvent) {
	if len(events) == 0 {
		return
	}
	_ = http.NewResponseController(w).Flush() // best effort: the response is complete either way
	s.emit(events...)
}

// newEvent starts a data event stamped now.
func (s *Server) newEvent(c caller, event, method, path, matchedRoute string, status int, p params) hookEvent {
	return hookEvent{
		event: event, caller: c, createdAt: s.clock(), method: method, path: path,
		matchedRoute: matchedRoute, status: status, params: p,
	}
}

// withData attaches a response body (or snapshot) to the event.
func (e hookEvent) withData(v any) hookEvent {
	b, err := encodeJSON(v)
	if err == nil {
		e.data = b
	}
	return e
}

// CreateHook registers a webhook for events at url, exactly as
// POST /api/hooks does, and returns it with its signing key.
func (s *Server) CreateHook(name, hookURL string, events ...string) (Hook, error) {
	body, err := json.Marshal(map[string]any{"name": name, "events": events, "config": map[string]any{"url": hookURL}})
	if err != nil {
		return Hook{}, fmt.Errorf("create hook: %w", err)
	}
	return s.createHook(body)
}

// DeleteHook unregisters a webhook.
func (s *Server) DeleteHook(id string) error {
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	if _, ok := s.data.hooks[id]; !ok {
		return errNotExistsWithID("hooks", id)
	}
	delete(s.data.hooks, id)
	return nil
}

func (s *Server) createHook(body []byte) (Hook, error) {
	g := newGuard(body)
	name, _ := g.str("name", true, false, 1, 256)
	events, _ := g.strings("events", true, true)
	enabled, hasEnabled := g.boolean("enabled", false)
	cfgRaw, _ := g.object("config", true)
	for i, ev := range events {
		if !knownHookEvent(ev) {
			g.issues = append(g.issues, zodIssue{Code: "invalid_enum_value", Path: []any{"events", i},
				Message: fmt.Sprintf("Invalid enum value. Received '%s'", ev)})
		}
	}
	var cfg HookConfig
	if cfgRaw != nil {
		if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
			g.typeIssue("config", "object", cfgRaw)
		} else if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			g.issues = append(g.issues, zodIssue{Code: "invalid_string", Path: []any{"config", "url"},
				Message: "Invalid url"})
		}
	}
	if err := g.err(); err != nil {
		return Hook{}, err
	}
	if !hasEnabled {
		enabled = true
	}
	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	h := &Hook{
		TenantID: tenantID, ID: s.data.newID(), Name: *name, Events: events,
		Config: cfg, SigningKey: s.data.newSecret(), Enabled: enabled, CreatedAt: s.clock().UnixMilli(),
	}
	s.data.hooks[h.ID] = h
	return *h, nil
}

func (s *Server) hookRoutes() {
	s.api("POST /api/hooks", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h, err := s.createHook(body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusCreated, h)
	})
	s.api("GET /api/hooks", func(w http.ResponseWriter, r *http.Request) {
		p, err := parsePage(r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.data.mu.RLock()
		hooks := make([]Hook, 0, len(s.data.hooks))
		for _, h := range s.data.hooks {
			hooks = append(hooks, *h)
		}
		s.data.mu.RUnlock()
		slices.SortFunc(hooks, func(a, b Hook) int {
			return cmp.Or(cmp.Compare(b.CreatedAt, a.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		writePage(s, w, r, p, hooks)
	})
	s.api("GET /api/hooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.RLock()
		h, ok := s.data.hooks[r.PathValue("id")]
		var out Hook
		if ok {
			out = *h
		}
		s.data.mu.RUnlock()
		if !ok {
			s.writeError(w, r, errNotExistsWithID("hooks", r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, out)
	})
	s.api("PATCH /api/hooks/{id}/signing-key", func(w http.ResponseWriter, r *http.Request) {
		s.data.mu.Lock()
		h, ok := s.data.hooks[r.PathValue("id")]
		var out Hook
		if ok {
			updated := *h
			updated.SigningKey = s.data.newSecret()
			s.data.hooks[h.ID] = &updated
			out = updated
		}
		s.data.mu.Unlock()
		if !ok {
			s.writeError(w, r, errNotExistsWithID("hooks", r.PathValue("id")))
			return
		}
		s.writeJSON(w, r, http.StatusOK, out)
	})
	s.api("DELETE /api/hooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteHook(r.PathValue("id")); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeNoContent(w, http.StatusNoContent)
	})
}
