package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// webhookReplica is the harness's replica receiving the simulator's
// webhooks: a server over the harness's views whose Webhooks verify with
// the signing key of a simulator hook pointing at it. Its answers go
// through harness.do, so every one is checked against openapi.yaml.
type webhookReplica struct {
	*harness
	hook     logtotest.Hook
	webhooks *Webhooks
	registry *prometheus.Registry
}

// newWebhookReplica builds the replica; adjust, given the harness, changes
// the receiver's configuration (nil: the defaults, with fast retries).
func newWebhookReplica(t *testing.T, adjust func(*harness, *WebhooksConfig)) *webhookReplica {
	t.Helper()
	h := newHarness(t, harnessOptions{})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &webhookReplica{registry: prometheus.NewRegistry()}
	metrics := NewMetrics(r.registry, time.Now)

	// The hook needs the server's URL and the server the hook's key: the
	// listener comes first, its handler is set once the server exists.
	var handler atomic.Pointer[http.Handler]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		(*handler.Load()).ServeHTTP(w, req)
	}))
	t.Cleanup(ts.Close)
	var err error
	if r.hook, err = h.sim.CreateHook("logto-proxy", ts.URL+WebhookPath, WebhookEvents()...); err != nil {
		t.Fatal(err)
	}
	cfg := WebhooksConfig{
		SigningKey: r.hook.SigningKey, Logto: h.logto, Hierarchy: h.view, Users: h.users, Profiles: h.profiles,
		Metrics: metrics, Logger: quiet, RetryBackoff: 5 * time.Millisecond,
	}
	if adjust != nil {
		adjust(h, &cfg)
	}
	if r.webhooks, err = NewWebhooks(cfg); err != nil {
		t.Fatal(err)
	}
	r.webhooks.Start()
	t.Cleanup(r.webhooks.Close)
	server, err := New(Config{
		Hierarchy: h.view, Logto: h.logto, Sessions: h.sessions,
		Auth:  AuthConfig{Store: h.store, Profiles: h.profiles, Service: h.service},
		Users: UsersConfig{View: h.users}, Metrics: metrics, Gatherer: r.registry, Logger: quiet,
		Webhooks: r.webhooks,
	})
	if err != nil {
		t.Fatal(err)
	}
	served := server.Handler()
	handler.Store(&served)
	replica := *h
	replica.server, replica.http = server, ts
	r.harness = &replica
	return r
}

// deliver posts body with a signature header (none when sig is "").
func (r *webhookReplica) deliver(t *testing.T, body []byte, sig string) reply {
	t.Helper()
	headers := []string{"Content-Type", "application/json"}
	if sig != "" {
		headers = append(headers, WebhookSignatureHeader, sig)
	}
	return r.do(t, http.MethodPost, WebhookPath, "", bytes.NewReader(body), headers...)
}

// deliverSigned posts body signed with the hook's key and expects it
// accepted.
func (r *webhookReplica) deliverSigned(t *testing.T, body []byte) {
	t.Helper()
	if got := r.deliver(t, body, logtotest.Sign(r.hook.SigningKey, body)); got.Status != http.StatusOK {
		t.Fatalf("signed delivery answered %d %s", got.Status, got.Body)
	}
}

// metric is the value of one counter or gauge series of the replica, 0
// when absent; labels are name, value pairs.
func (r *webhookReplica) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return gathered(t, r.registry, name, labels...)
}

// gathered reads one series from a registry.
func gathered(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// waitFor polls cond until it holds; the deadline is a liveness bound for
// a broken implementation, never a measurement.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// served is the organization the replica's view serves for a Logto id.
func (r *webhookReplica) served(t *testing.T, id string) (hierarchy.Org, bool) {
	t.Helper()
	return r.tree(t).Org(id)
}

// rereads waits for the re-reads of a view to reach n applied in all, so
// that a test knows a delivery was processed, whatever it changed.
func (r *webhookReplica) rereads(t *testing.T, view string, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v %s re-reads applied", n, view), func() bool {
		return r.metric(t, "logto_proxy_webhook_rereads_total", "view", view, "result", rereadApplied) >= n
	})
}

// dataEvent is a data hook body as Logto shapes it (logto-contract.md §5.2).
func dataEvent(event, path string, params map[string]string, data any) []byte {
	body := map[string]any{
		"event": event, "createdAt": "2026-01-01T00:00:00.000Z", "userAgent": "test", "ip": "127.0.0.1",
		"path": path, "method": "PATCH", "status": 200, "params": params, "matchedRoute": path, "hookId": "hook",
	}
	if data != nil {
		body["data"] = data
	}
	b, _ := json.Marshal(body)
	return b
}

func orgEvent(event, id string, data any) []byte {
	return dataEvent(event, "/organizations/"+id, map[string]string{"id": id}, data)
}

func TestWebhookRefusalsChangeNothing(t *testing.T) {
	r := newWebhookReplica(t, nil)
	d1 := r.orgID(t, "d1")
	// A change Logto sent no webhook for: a delivery let through would
	// make the replica re-read d1 and serve it.
	r.sim.Faults().DropWebhooks(true)
	if _, err := r.sim.UpdateOrganization(d1, map[string]any{"name": "renamed silently"}); err != nil {
		t.Fatal(err)
	}
	before := r.view.Health().Generation

	body := orgEvent(eventOrgDataUpdated, d1, nil)
	good := logtotest.Sign(r.hook.SigningKey, body)
	replayed := bytes.Replace(body, []byte(d1), []byte(r.orgID(t, "d2")), 1)
	oversized := orgEvent(eventOrgDataUpdated, d1, map[string]string{"id": d1, "padding": strings.Repeat("x", 2<<20)})
	signed := func(b []byte) string { return logtotest.Sign(r.hook.SigningKey, b) }
	noID := dataEvent(eventOrgDataUpdated, "/organizations", map[string]string{}, nil)
	badID := orgEvent(eventOrgDataUpdated, "../users", nil)
	ignored := dataEvent("Role.Created", "/roles", nil, map[string]string{"id": "role1"})
	cases := []struct {
		name    string
		body    []byte
		sig     string
		status  int
		message string
	}{
		{"unsigned", body, "", 401, msgWebhookUnsigned},
		{"signed with another key", body, logtotest.Sign("not the signing key", body), 401, msgWebhookBadSig},
		{"replayed with a changed body", replayed, good, 401, msgWebhookBadSig},
		{"a truncated signature", body, good[:32], 401, msgWebhookBadSig},
		{"a signature that is not hex", body, strings.Repeat("z", 64), 401, msgWebhookBadSig},
		{"oversized, signed", oversized, signed(oversized), 413, msgWebhookTooLarge},
		{"signed, not JSON", []byte("not json"), signed([]byte("not json")), 400, msgWebhookMalformed},
		{"signed, no organization id", noID, signed(noID), 400, msgWebhookMalformed},
		{"signed, an id that is no id", badID, signed(badID), 400, msgWebhookMalformed},
		{"signed, an event the views do not follow", ignored, signed(ignored), 200, msgWebhookIgnored},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := r.deliver(t, tc.body, tc.sig)
			if got.Status != tc.status || got.Env.Message != tc.message {
				t.Errorf("answered %d %q, want %d %q", got.Status, got.Env.Message, tc.status, tc.message)
			}
		})
	}
	if n := queued(r.webhooks.orgs) + queued(r.webhooks.users); n != 0 {
		t.Errorf("%d re-reads queued by refused deliveries", n)
	}
	if o, _ := r.served(t, d1); o.Name == "renamed silently" || r.view.Health().Generation != before {
		t.Errorf("a refused delivery changed the view: %q, generation %d → %d", o.Name, before, r.view.Health().Generation)
	}
	for _, want := range []struct {
		event, verdict string
		n              float64
	}{
		{eventUnverified, verdictUnsigned, 1},
		{eventUnverified, verdictBadSig, 4},
		{eventUnverified, verdictTooLarge, 1},
		{eventOther, verdictMalformed, 1},
		{eventOrgDataUpdated, verdictMalformed, 2},
		{eventOther, verdictIgnored, 1},
		{eventOrgDataUpdated, verdictAccepted, 0},
	} {
		if got := r.metric(t, "logto_proxy_webhook_events_total", "event", want.event, "verdict", want.verdict); got != want.n {
			t.Errorf("webhook_events_total{event=%q,verdict=%q} = %v, want %v", want.event, want.verdict, got, want.n)
		}
	}

	// The genuine delivery is accepted, and the re-read serves the change.
	r.deliverSigned(t, body)
	waitFor(t, "the silent rename served", func() bool { o, _ := r.served(t, d1); return o.Name == "renamed silently" })
	if got := r.metric(t, "logto_proxy_webhook_events_total", "event", eventOrgDataUpdated, "verdict", verdictAccepted); got != 1 {
		t.Errorf("accepted deliveries = %v, want 1", got)
	}
}

func TestWebhookRouteWithoutSigningKeyIsNotServed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body := orgEvent(eventOrgDeleted, h.orgID(t, "d1"), nil)
	got := h.do(t, http.MethodPost, WebhookPath, "", bytes.NewReader(body), WebhookSignatureHeader, logtotest.Sign("any", body))
	if got.Status != http.StatusNotFound || got.Env.Message != "api not found" {
		t.Errorf("answered %d %q, want 404 api not found", got.Status, got.Env.Message)
	}
}

// Organizations created, changed and deleted in the simulator follow on
// the replica's HTTP API through the simulator's own signed webhooks.
func TestWebhookFollowsOrganizations(t *testing.T) {
	r := newWebhookReplica(t, nil)
	parent := r.orgID(t, "d1r1")
	created, err := r.sim.CreateOrganization(map[string]any{"name": "Hooked Customer",
		"customData": map[string]any{"type": "customer", "createdBy": parent}})
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/customers/" + created.ID
	waitFor(t, "the new customer served", func() bool { return r.get(t, "owner", path).Status == http.StatusOK })
	if got := r.get(t, "d1r1", path); got.Status != http.StatusOK {
		t.Errorf("its reseller reads it: %d", got.Status)
	}

	if _, err := r.sim.UpdateOrganization(created.ID, map[string]any{"name": "Hooked Customer, renamed"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rename served", func() bool {
		var org struct{ Name string }
		got := r.get(t, "owner", path)
		return json.Unmarshal(got.Env.Data, &org) == nil && org.Name == "Hooked Customer, renamed"
	})

	if err := r.sim.DeleteOrganization(created.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion served", func() bool { return r.get(t, "owner", path).Status == http.StatusNotFound })
	for _, event := range []string{eventOrgCreated, eventOrgDataUpdated, eventOrgDeleted} {
		if got := r.metric(t, "logto_proxy_webhook_events_total", "event", event, "verdict", verdictAccepted); got != 1 {
			t.Errorf("%s accepted %v times, want 1", event, got)
		}
	}
}

// Deliveries that are stale, duplicated or out of order never roll data
// back or resurrect an organization: each names what to re-read, and the
// replica serves what Logto says now.
func TestWebhookStaleDuplicateAndOutOfOrderDeliveries(t *testing.T) {
	r := newWebhookReplica(t, nil)
	r.sim.Faults().DropWebhooks(true) // this test delivers by hand
	d1 := r.orgID(t, "d1")
	orgData := func(o logtotest.Organization) any { return o }

	// Two renames; their deliveries arrive newest first, then a duplicate.
	v1, err := r.sim.UpdateOrganization(d1, map[string]any{"name": "first rename"})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := r.sim.UpdateOrganization(d1, map[string]any{"name": "second rename"})
	if err != nil {
		t.Fatal(err)
	}
	r.deliverSigned(t, orgEvent(eventOrgDataUpdated, d1, orgData(v2)))
	r.rereads(t, cache.ViewHierarchy, 1)
	r.deliverSigned(t, orgEvent(eventOrgDataUpdated, d1, orgData(v1)))
	r.rereads(t, cache.ViewHierarchy, 2)
	gen := r.view.Health().Generation
	r.deliverSigned(t, orgEvent(eventOrgDataUpdated, d1, orgData(v1)))
	r.rereads(t, cache.ViewHierarchy, 3)
	if o, _ := r.served(t, d1); o.Name != "second rename" {
		t.Errorf("after a stale delivery d1 is served as %q, want the latest name", o.Name)
	}
	if g := r.view.Health().Generation; g != gen {
		t.Errorf("a duplicate delivery made generation %d from %d; nothing changed", g, gen)
	}

	// Created and deleted before either delivery arrives, which then come
	// in the wrong order: the organization never appears.
	gone, err := r.sim.CreateOrganization(map[string]any{"name": "short-lived", "customData": map[string]any{"type": "distributor"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.sim.DeleteOrganization(gone.ID); err != nil {
		t.Fatal(err)
	}
	r.deliverSigned(t, orgEvent(eventOrgDeleted, gone.ID, nil))
	r.rereads(t, cache.ViewHierarchy, 4)
	r.deliverSigned(t, dataEvent(eventOrgCreated, "/organizations", nil, orgData(gone)))
	r.rereads(t, cache.ViewHierarchy, 5)
	if _, ok := r.served(t, gone.ID); ok {
		t.Error("a late Organization.Created resurrected a deleted organization")
	}

	// An organization deletion carries only params.id.
	d2 := r.orgID(t, "d2r1c1")
	if err := r.sim.DeleteOrganization(d2); err != nil {
		t.Fatal(err)
	}
	r.deliverSigned(t, orgEvent(eventOrgDeleted, d2, nil))
	waitFor(t, "the deletion served", func() bool { _, ok := r.served(t, d2); return !ok })
}

// The membership event, with deltas or without, moves the home of a user
// whose home comes from its memberships, and drops the cached profiles of
// the users it concerns.
func TestWebhookMembershipWithAndWithoutDeltas(t *testing.T) {
	r := newWebhookReplica(t, nil)
	ctx := context.Background()
	homeOf := func(id string) string {
		snap, err := r.users.Current(ctx, r.tree(t))
		if err != nil {
			t.Fatal(err)
		}
		u, ok := snap.Users.Get(id)
		switch {
		case !ok:
			return "absent"
		case u.Organization == nil:
			return ""
		}
		return u.Organization.LogtoID
	}
	user, err := r.sim.CreateUser(map[string]any{"username": "member", "primaryEmail": "member@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new user served, without a home", func() bool { return homeOf(user.ID) == "" })

	d1r1, d2 := r.orgID(t, "d1r1"), r.orgID(t, "d2")
	if err := r.sim.AddOrganizationMembers(d1r1, user.ID); err != nil { // delivered with addedUserIds
		t.Fatal(err)
	}
	waitFor(t, "home from the added membership", func() bool { return homeOf(user.ID) == d1r1 })

	// Warm the user's profile, then move the user without a webhook, and
	// deliver the event the way Logto before 1.40 does: no deltas.
	if _, err := r.profiles.Get(ctx, user.ID); err != nil {
		t.Fatal(err)
	}
	r.sim.ResetCalls()
	if _, err := r.profiles.Get(ctx, user.ID); err != nil || r.sim.Calls("GET /api/users/{userId}") != 0 {
		t.Fatalf("the profile was not cached (%v)", err)
	}
	r.sim.Faults().DropWebhooks(true)
	r.sim.RemoveOrganizationMember(d1r1, user.ID)
	if err := r.sim.AddOrganizationMembers(d2, user.ID); err != nil {
		t.Fatal(err)
	}
	applied := r.metric(t, "logto_proxy_webhook_rereads_total", "view", cache.ViewUsers, "result", rereadApplied)
	body, _ := json.Marshal(map[string]any{"event": eventMembershipUpdated, "path": "/organizations/" + d1r1 + "/users",
		"params": map[string]string{"id": d1r1}, "organizationId": d1r1, "hookId": "hook"})
	r.deliverSigned(t, body)
	waitFor(t, "home moved by the delta-less event", func() bool { return homeOf(user.ID) == d2 })
	r.rereads(t, cache.ViewUsers, applied+1)
	if _, err := r.profiles.Get(ctx, user.ID); err != nil {
		t.Fatal(err)
	}
	if r.sim.Calls("GET /api/users/{userId}") == 0 {
		t.Error("the profile was not dropped: it was served from the cache")
	}
}

// User events follow on the user routes: creation, suspension, deletion.
func TestWebhookFollowsUsers(t *testing.T) {
	r := newWebhookReplica(t, nil)
	org := r.orgID(t, "d1r1")
	user, err := r.sim.CreateUser(map[string]any{"username": "hooked", "primaryEmail": "hooked@example.com",
		"customData": map[string]any{"organizationId": org}})
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/users/" + user.ID
	waitFor(t, "the new user served", func() bool { return r.get(t, "owner", path).Status == http.StatusOK })

	if _, err := r.sim.SetUserSuspended(user.ID, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the suspension served", func() bool {
		var u struct {
			SuspendedAt *string `json:"suspended_at"`
		}
		return json.Unmarshal(r.get(t, "owner", path).Env.Data, &u) == nil && u.SuspendedAt != nil
	})
	if err := r.sim.DeleteUser(user.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deletion served", func() bool { return r.get(t, "owner", path).Status == http.StatusNotFound })

	// A sign-in (an interaction hook) names the user by userId.
	member := r.userOf("d1r1")
	r.deliverSigned(t, []byte(`{"event":"PostSignIn","interactionEvent":"SignIn","userId":"`+member+`","hookId":"hook"}`))
	r.rereads(t, cache.ViewUsers, 4)
}

// A re-read Logto cannot answer is retried until it can.
func TestWebhookRereadRetriedUntilLogtoAnswers(t *testing.T) {
	var client *logto.Client
	r := newWebhookReplica(t, func(h *harness, cfg *WebhooksConfig) {
		client = newTestLogto(t, h.sim)
		cfg.Logto, cfg.MaxAttempts = client, 1000
	})
	d1 := r.orgID(t, "d1")
	if _, err := client.GetOrganization(context.Background(), d1); err != nil { // takes its token before the outage
		t.Fatal(err)
	}
	r.sim.Faults().SetOutage(true)
	if _, err := r.sim.UpdateOrganization(d1, map[string]any{"name": "renamed during an outage"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed re-read retried", func() bool {
		return r.metric(t, "logto_proxy_webhook_rereads_total", "view", cache.ViewHierarchy, "result", rereadRetried) >= 2
	})
	r.sim.Faults().SetOutage(false)
	waitFor(t, "the rename served", func() bool { o, _ := r.served(t, d1); return o.Name == "renamed during an outage" })
}

// A re-read that keeps failing is dropped after MaxAttempts, for the
// reconcile to repair.
func TestWebhookRereadDroppedAfterMaxAttempts(t *testing.T) {
	var client *logto.Client
	r := newWebhookReplica(t, func(h *harness, cfg *WebhooksConfig) {
		client = newTestLogto(t, h.sim)
		cfg.Logto, cfg.MaxAttempts = client, 3
	})
	d1 := r.orgID(t, "d1")
	if _, err := client.GetOrganization(context.Background(), d1); err != nil {
		t.Fatal(err)
	}
	r.sim.Faults().SetOutage(true)
	if _, err := r.sim.UpdateOrganization(d1, map[string]any{"name": "never served"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-read dropped", func() bool {
		return r.metric(t, "logto_proxy_webhook_rereads_total", "view", cache.ViewHierarchy, "result", rereadDropped) == 1
	})
	if got := r.metric(t, "logto_proxy_webhook_rereads_total", "view", cache.ViewHierarchy, "result", rereadRetried); got != 2 {
		t.Errorf("retried %v times, want 2", got)
	}
	if n := queued(r.webhooks.orgs); n != 0 {
		t.Errorf("%d re-reads still queued", n)
	}
}

// newTestLogto is a Logto client without retries and with a breaker that
// never opens, so that a test's outage fails each call exactly once.
func newTestLogto(t *testing.T, sim *logtotest.Server) *logto.Client {
	t.Helper()
	appID, secret := sim.M2MCredentials()
	c, err := logto.New(logto.Config{Endpoint: sim.URL(), AppID: appID, AppSecret: secret, MaxAttempts: 1,
		Breaker: logto.BreakerConfig{ConsecutiveFailures: 1 << 30}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// queued is how many re-reads wait in q.
func queued(q *rereadQueue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}
