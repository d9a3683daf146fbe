package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestUnknownRoutesAnswerAPINotFound(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/api/nothing-here"},
		{http.MethodGet, "/nothing-here"},
		{http.MethodDelete, "/healthz"},
	} {
		r := h.do(t, tc.method, tc.path, "", nil)
		if r.Status != http.StatusNotFound || r.Env.Message != "api not found" || string(r.Env.Data) != "null" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	if r := h.do(t, http.MethodGet, "/healthz", "", nil); r.Status != http.StatusOK {
		t.Errorf("/healthz: %d", r.Status)
	}
	r := h.do(t, http.MethodGet, "/readyz", "", nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"status":"ready"`) {
		t.Errorf("/readyz after the first load: %d %s", r.Status, r.Body)
	}
	m := h.do(t, http.MethodGet, "/metrics", "", nil)
	for _, name := range []string{`logto_proxy_snapshot_generation{view="hierarchy"} 1`, "logto_proxy_logto_requests_total", "logto_proxy_http_requests_total"} {
		if !strings.Contains(string(m.Body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestAuthenticationRefusals(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	valid := h.token(t, "d1")
	other, err := NewSessions(SessionConfig{Secret: []byte(strings.Repeat("x", 40))})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := other.MintAccess(h.personaUser(t, "owner"))
	if err != nil {
		t.Fatal(err)
	}
	refresh, _, err := h.sessions.MintRefresh("someone")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, header, want string
	}{
		{"missing header", "", "authorization header required"},
		{"wrong scheme", "Basic " + valid, "invalid authorization header format"},
		{"lower-case scheme", "bearer " + valid, "invalid authorization header format"},
		{"empty token", "Bearer ", "token not provided"},
		{"garbage", "Bearer not.a.jwt", "invalid token"},
		{"other secret", "Bearer " + foreign, "invalid token"},
		{"refresh token as access token", "Bearer " + refresh, "invalid token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{}
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			r := h.do(t, http.MethodGet, "/api/organizations", "", nil, hdr...)
			if r.Status != http.StatusUnauthorized || r.Env.Message != tc.want {
				t.Errorf("got %d %s, want 401 %q", r.Status, r.Body, tc.want)
			}
		})
	}
}
