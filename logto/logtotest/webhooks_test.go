package logtotest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// delivery is one webhook call as received.
type delivery struct {
	header http.Header
	body   []byte
}

func (d delivery) payload(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(d.body, &m); err != nil {
		t.Fatalf("payload %s: %v", d.body, err)
	}
	return m
}

// receiver is a webhook endpoint that records every delivery.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []delivery
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read delivery: %v", err)
		}
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// deliveries returns what arrived; call it after the simulator's Close,
// which waits for deliveries in flight.
func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// byEvent indexes payloads by event name (several per event possible).
func byEvent(t *testing.T, ds []delivery) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, d := range ds {
		p := d.payload(t)
		ev, _ := p["event"].(string)
		out[ev] = append(out[ev], p)
	}
	return out
}

func hmacHex(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookOrganizationEvents(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	rc := newReceiver(t)
	a := newAPI(t, s)
	res := must(t, a.do(http.MethodPost, "/hooks", map[string]any{
		"name": "cache", "events": []string{"Organization.Created", "Organization.Data.Updated", "Organization.Deleted",
			"Organization.Membership.Updated"},
		"config": map[string]any{"url": rc.srv.URL, "headers": map[string]string{"x-custom": "1"}},
	}), http.StatusCreated)
	var hook logtotest.Hook
	res.json(t, &hook)
	if len(hook.SigningKey) != 32 || !hook.Enabled || hook.ID == "" {
		t.Fatalf("hook = %+v", hook)
	}
	var org logtotest.Organization
	must(t, a.do(http.MethodPost, "/organizations", map[string]any{"name": "Acme"}, "User-Agent", "test-agent"), http.StatusCreated).json(t, &org)
	must(t, a.do(http.MethodPatch, "/organizations/"+org.ID, map[string]any{"customData": map[string]any{"k": "v"}}), http.StatusOK)
	u1 := createUser(t, s, map[string]any{"username": "u1"})
	u2 := createUser(t, s, map[string]any{"username": "u2"})
	must(t, a.do(http.MethodPost, "/organizations/"+org.ID+"/users", map[string]any{"userIds": []string{u1.ID, u2.ID}}), http.StatusCreated)
	must(t, a.do(http.MethodPut, "/organizations/"+org.ID+"/users", map[string]any{"userIds": []string{u2.ID}}), http.StatusNoContent)
	must(t, a.do(http.MethodDelete, "/organizations/"+org.ID+"/users/"+u2.ID, nil), http.StatusNoContent)
	must(t, a.do(http.MethodDelete, "/organizations/"+org.ID, nil), http.StatusNoContent)
	must(t, a.do(http.MethodPost, "/organizations", map[string]any{}), http.StatusBadRequest) // failed: no event
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ds := rc.deliveries()
	if len(ds) != 6 {
		t.Fatalf("%d deliveries, want 6", len(ds))
	}
	for _, d := range ds {
		if d.header.Get("User-Agent") != "Logto (https://logto.io/)" || d.header.Get("X-Custom") != "1" {
			t.Errorf("headers = %v", d.header)
		}
		if sig := d.header.Get("Logto-Signature-Sha-256"); sig != hmacHex(hook.SigningKey, d.body) {
			t.Errorf("signature %q does not verify over the raw body", sig)
		}
		if p := d.payload(t); p["hookId"] != hook.ID {
			t.Errorf("hookId = %v", p["hookId"])
		}
	}
	events := byEvent(t, ds)
	created := events["Organization.Created"]
	if len(created) != 1 {
		t.Fatalf("Organization.Created x%d", len(created))
	}
	for _, d := range ds {
		if d.payload(t)["event"] == "Organization.Created" {
			want := "event,createdAt,userAgent,ip,path,method,status,params,matchedRoute,data,hookId"
			if got := strings.Join(keys(t, d.body), ","); got != want {
				t.Errorf("payload keys = %s", got)
			}
		}
	}
	c := created[0]
	data, _ := c["data"].(map[string]any)
	if c["path"] != "/organizations" || c["method"] != "POST" || c["status"] != float64(201) ||
		c["matchedRoute"] != "/organizations" || c["userAgent"] != "test-agent" || data["id"] != org.ID {
		t.Errorf("Organization.Created = %v", c)
	}
	upd := events["Organization.Data.Updated"][0]
	data, _ = upd["data"].(map[string]any)
	params, _ := upd["params"].(map[string]any)
	if upd["matchedRoute"] != "/organizations/:id" || params["id"] != org.ID || data["customData"].(map[string]any)["k"] != "v" {
		t.Errorf("Organization.Data.Updated = %v", upd)
	}
	del := events["Organization.Deleted"][0]
	if _, has := del["data"]; has || del["status"] != float64(204) {
		t.Errorf("Organization.Deleted = %v", del)
	}
	deltas := map[string]string{}
	for _, m := range events["Organization.Membership.Updated"] {
		if m["organizationId"] != org.ID {
			t.Errorf("membership organizationId = %v", m["organizationId"])
		}
		if _, has := m["data"]; has {
			t.Errorf("membership event carries data: %v", m)
		}
		b, _ := json.Marshal([]any{m["addedUserIds"], m["removedUserIds"]})
		deltas[m["method"].(string)] = string(b)
	}
	want := map[string]string{
		"POST":   `[["` + u1.ID + `","` + u2.ID + `"],null]`,
		"PUT":    `[null,["` + u1.ID + `"]]`,
		"DELETE": `[null,["` + u2.ID + `"]]`,
	}
	for m, w := range want {
		if deltas[m] != w {
			t.Errorf("%s delta = %s, want %s", m, deltas[m], w)
		}
	}
}

func TestWebhookUserEventsAndNoneForRoles(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	f, err := s.SeedFixture()
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	hook, err := s.CreateHook("all", rc.srv.URL, "User.Created", "User.Deleted", "User.Data.Updated",
		"User.SuspensionStatus.Updated", "Organization.Membership.Updated", "Organization.Data.Updated")
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s)
	// Role changes: no webhook in Logto.
	org, user := f.Orgs["d1"], f.Users["d1"]
	must(t, a.do(http.MethodPost, "/organizations/"+org+"/users/"+user+"/roles",
		map[string]any{"organizationRoleNames": []string{"Reseller"}}), http.StatusCreated)
	must(t, a.do(http.MethodPut, "/organizations/"+org+"/users/"+user+"/roles",
		map[string]any{"organizationRoleIds": []string{f.OrgRoles["Distributor"]}}), http.StatusNoContent)
	must(t, a.do(http.MethodPost, "/organizations/"+org+"/users/roles",
		map[string]any{"userIds": []string{user}, "organizationRoleIds": []string{f.OrgRoles["Customer"]}}), http.StatusCreated)
	must(t, a.do(http.MethodDelete, "/organizations/"+org+"/users/"+user+"/roles/"+f.OrgRoles["Customer"], nil), http.StatusNoContent)
	must(t, a.do(http.MethodPost, "/users/"+user+"/roles", map[string]any{"roleIds": []string{f.UserRoles["Reader"]}}), http.StatusCreated)

	var u logtotest.User
	must(t, a.do(http.MethodPost, "/users", map[string]any{"username": "newbie"}), http.StatusOK).json(t, &u)
	must(t, a.do(http.MethodPatch, "/users/"+u.ID, map[string]any{"name": "N"}), http.StatusOK)
	must(t, a.do(http.MethodPatch, "/users/"+u.ID+"/custom-data", map[string]any{"customData": map[string]any{"a": 1}}), http.StatusOK)
	must(t, a.do(http.MethodPatch, "/users/"+u.ID+"/is-suspended", map[string]any{"isSuspended": true}), http.StatusOK)
	must(t, a.do(http.MethodDelete, "/users/"+u.ID, nil), http.StatusNoContent)
	if _, err := s.UpdateOrganization(org, map[string]any{"name": "d1 renamed"}); err != nil { // in-process: same webhook
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	events := byEvent(t, rc.deliveries())
	counts := map[string]int{}
	for ev, ps := range events {
		counts[ev] = len(ps)
	}
	want := map[string]int{"User.Created": 1, "User.Data.Updated": 2, "User.SuspensionStatus.Updated": 1,
		"User.Deleted": 1, "Organization.Data.Updated": 1}
	if len(counts) != len(want) {
		t.Errorf("events = %v, want %v (none for role changes)", counts, want)
	}
	for ev, n := range want {
		if counts[ev] != n {
			t.Errorf("%s x%d, want %d", ev, counts[ev], n)
		}
	}
	if c := events["User.Created"]; len(c) == 1 && (c[0]["status"] != float64(200) || c[0]["data"].(map[string]any)["id"] != u.ID) {
		t.Errorf("User.Created = %v", c[0])
	}
	if d := events["User.Deleted"]; len(d) == 1 && d[0]["data"].(map[string]any)["id"] != u.ID {
		t.Errorf("User.Deleted must carry the user snapshot: %v", d[0])
	}
	if sus := events["User.SuspensionStatus.Updated"]; len(sus) == 1 && sus[0]["data"].(map[string]any)["isSuspended"] != true {
		t.Errorf("suspension event = %v", sus[0])
	}
	for _, ps := range events {
		for _, p := range ps {
			if p["hookId"] != hook.ID {
				t.Errorf("hookId = %v", p["hookId"])
			}
		}
	}
}

func TestDropWebhooks(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	rc := newReceiver(t)
	if _, err := s.CreateHook("h", rc.srv.URL, "Organization.Created"); err != nil {
		t.Fatal(err)
	}
	s.Faults().DropWebhooks(true)
	createOrgs(t, s, 3, "dropped ")
	s.Faults().DropWebhooks(false)
	createOrgs(t, s, 1, "kept ")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ds := rc.deliveries()
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	if data := ds[0].payload(t)["data"].(map[string]any); data["name"] != "kept 0" {
		t.Errorf("delivered %v", data)
	}
}

func TestHookAPI(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	res := a.do(http.MethodPost, "/hooks", map[string]any{"name": "x", "events": []string{"Nope.Event"},
		"config": map[string]any{"url": "http://127.0.0.1:1/"}})
	if res.status != http.StatusBadRequest {
		t.Errorf("unknown event: %d %s", res.status, res.body)
	}
	var h logtotest.Hook
	must(t, a.do(http.MethodPost, "/hooks", map[string]any{"name": "x", "events": []string{"User.Created"},
		"config": map[string]any{"url": "http://127.0.0.1:1/"}}), http.StatusCreated).json(t, &h)
	if got := ids(t, must(t, a.get("/hooks"), http.StatusOK)); !slices.Equal(got, []string{h.ID}) {
		t.Errorf("hooks = %v", got)
	}
	var rotated logtotest.Hook
	must(t, a.do(http.MethodPatch, "/hooks/"+h.ID+"/signing-key", nil), http.StatusOK).json(t, &rotated)
	if rotated.SigningKey == h.SigningKey || len(rotated.SigningKey) != 32 {
		t.Errorf("signing key not rotated")
	}
	must(t, a.do(http.MethodDelete, "/hooks/"+h.ID, nil), http.StatusNoContent)
	must(t, a.get("/hooks/"+h.ID), http.StatusNotFound)
	// An unreachable hook does not delay or break the API.
	createOrgs(t, s, 1, "x")
}

func TestSign(t *testing.T) {
	body := []byte(`{"event":"User.Created"}`)
	if logtotest.Sign("key", body) != hmacHex("key", body) {
		t.Errorf("Sign disagrees with HMAC-SHA256 hex")
	}
}
