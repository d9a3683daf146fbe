package logtotest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The tests talk to the simulator over raw HTTP and check its answers
// against reference/logto-contract.md; they never use the project's client.

// fixedNow is the clock of tests that need stable timestamps.
func fixedNow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func newSim(t testing.TB, opts logtotest.Options) *logtotest.Server {
	t.Helper()
	s, err := logtotest.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// response is a fully read HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// object decodes the body as a JSON object.
func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// keys returns the top-level keys of a JSON object in the order sent.
func keys(t testing.TB, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var out []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("decode key: %v", err)
		}
		out = append(out, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("decode value: %v", err)
		}
	}
	return out
}

// send performs a request and reads the whole answer.
func send(t testing.TB, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

func newRequest(t testing.TB, method, rawURL string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// tokenForm posts a form to the token endpoint.
func tokenForm(t testing.TB, s *logtotest.Server, form url.Values, basicUser, basicPass string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/oidc/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	return send(t, req)
}

// managementToken gets an M2M token for the Management API.
func managementToken(t testing.TB, s *logtotest.Server) string {
	t.Helper()
	id, secret := s.M2MCredentials()
	res := tokenForm(t, s, url.Values{
		"grant_type": {"client_credentials"}, "resource": {s.ManagementResource()}, "scope": {"all"},
	}, id, secret)
	if res.status != http.StatusOK {
		t.Fatalf("token: %d %s", res.status, res.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	res.json(t, &tok)
	return tok.AccessToken
}

// api is a Management API caller with a valid token.
type api struct {
	t     testing.TB
	s     *logtotest.Server
	token string
}

func newAPI(t testing.TB, s *logtotest.Server) *api {
	return &api{t: t, s: s, token: managementToken(t, s)}
}

// do calls path (relative to /api) with an optional JSON body and extra
// headers given as name, value pairs.
func (a *api) do(method, path string, body any, headers ...string) response {
	a.t.Helper()
	req := newRequest(a.t, method, a.s.URL()+"/api"+path, body)
	req.Header.Set("Authorization", "Bearer "+a.token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return send(a.t, req)
}

func (a *api) get(path string) response {
	a.t.Helper()
	return a.do(http.MethodGet, path, nil)
}

// must checks the status and returns the response.
func must(t testing.TB, res response, status int) response {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d, want %d: %s", res.status, status, res.body)
	}
	return res
}

// createOrgs creates n organizations in process and returns their ids in
// creation order.
func createOrgs(t testing.TB, s *logtotest.Server, n int, prefix string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		o, err := s.CreateOrganization(map[string]any{"name": prefix + itoa(i)})
		if err != nil {
			t.Fatalf("create organization: %v", err)
		}
		ids[i] = o.ID
	}
	return ids
}

func itoa(i int) string { return strconv.Itoa(i) }

func createUser(t testing.TB, s *logtotest.Server, fields map[string]any) logtotest.User {
	t.Helper()
	u, err := s.CreateUser(fields)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	return u
}

// ids extracts the "id" of each item of a JSON array body.
func ids(t testing.TB, res response) []string {
	t.Helper()
	var items []struct {
		ID string `json:"id"`
	}
	res.json(t, &items)
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}
