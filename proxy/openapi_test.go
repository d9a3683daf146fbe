package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/labstack/echo/v4"
)

// The OpenAPI document is the API's contract: every response any test of
// this package receives through the harness (harness.do) is validated
// against it, so a rendering change that breaks a documented shape fails
// the test that made the request, and the document cannot describe shapes
// the server does not produce without some test noticing.

// contract is the loaded, validated document with what validation needs.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	// notFound is the body schema of components.responses.ApiNotFound,
	// the answer to every request the document does not describe.
	notFound *openapi3.Schema
}

// loadContract loads proxy/openapi.yaml once per test binary (the document
// is immutable, and validating it is the slow part).
var loadContract = sync.OnceValues(func() (*contract, error) { return newContract(openAPIDocument) })

// newContract parses and validates a document and prepares its router.
func newContract(raw []byte) (*contract, error) {
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	// `uuid` is not one of OpenAPI's predefined formats; define it for this
	// document only (not globally), so that ids are checked.
	doc.SetStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122))
	if err := doc.Validate(context.Background(), openapi3.EnableSchemaFormatValidation()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.yaml: %w", err)
	}
	nf := doc.Components.Responses["ApiNotFound"]
	if nf == nil || nf.Value == nil || nf.Value.Content.Get(echo.MIMEApplicationJSON) == nil {
		return nil, errors.New("openapi.yaml: components.responses.ApiNotFound with a JSON body is missing")
	}
	return &contract{
		doc:    doc,
		router: router,
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true, // an undocumented status is an error
			// Errors name the failing value's path and the rule; the test
			// prints the body itself, so the schema and value dumps would
			// only bury the message.
			SchemaValidationOptions: append(doc.GetSchemaValidationOptions(), openapi3.DisableSchemaErrorDetails()),
		},
		notFound: nf.Value.Content.Get(echo.MIMEApplicationJSON).Schema.Value,
	}, nil
}

// check validates one answer to req against the document: the operation
// matched by method and path must document the status, its required
// headers and its body schema; a request the document does not describe
// must have been answered 404 "api not found". Gzip-encoded bodies are
// validated decoded, 304s by their headers and empty body.
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) error {
	if header.Get("Content-Encoding") == "gzip" {
		plain, err := gunzip(body)
		if err != nil {
			return fmt.Errorf("gzip-encoded body does not decode: %w", err)
		}
		body, header = plain, header.Clone()
		header.Del("Content-Encoding")
	}
	route, params, ok := c.find(req)
	if !ok {
		if err := c.checkNotFound(status, header, body); err != nil {
			return fmt.Errorf("%s %s is not in openapi.yaml, so it must be 404 api not found: %w", req.Method, req.URL.EscapedPath(), err)
		}
		return nil
	}
	name := route.Method + " " + route.Path
	if status == http.StatusNotModified {
		if err := c.checkNotModified(route, header, body); err != nil {
			return fmt.Errorf("%s: 304: %w", name, err)
		}
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts},
		Status:                 status,
		Header:                 header,
		Options:                c.opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s: %d: %w", name, status, err)
	}
	return nil
}

// find matches req to a documented operation. The router trims trailing
// slashes, which echo does not, so a match counts only when the route's
// template, filled with the matched parameters, spells the request's path
// exactly. The escaped path is matched, as echo does, so that an id with
// an encoded slash stays one segment.
func (c *contract) find(req *http.Request) (*routers.Route, map[string]string, bool) {
	escaped := req.URL.EscapedPath()
	r := req.Clone(req.Context())
	r.URL.Path, r.URL.RawPath = escaped, ""
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return nil, nil, false
	}
	spelled := route.Path
	for k, v := range params {
		spelled = strings.ReplaceAll(spelled, "{"+k+"}", v)
	}
	if spelled != escaped {
		return nil, nil, false
	}
	return route, params, true
}

// checkNotFound checks the answer to an undocumented request.
func (c *contract) checkNotFound(status int, header http.Header, body []byte) error {
	if status != http.StatusNotFound {
		return fmt.Errorf("status %d", status)
	}
	if header.Get(echo.HeaderXRequestID) == "" {
		return errors.New("no X-Request-Id")
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	return c.notFound.VisitJSON(v, c.opts.SchemaValidationOptions...)
}

// checkNotModified checks a 304: documented for the operation, no body,
// and the headers the document declares for it (kin-openapi does not
// validate 304s itself).
func (c *contract) checkNotModified(route *routers.Route, header http.Header, body []byte) error {
	ref := route.Operation.Responses.Status(http.StatusNotModified)
	if ref == nil || ref.Value == nil {
		return errors.New("status is not supported")
	}
	if len(body) > 0 {
		return fmt.Errorf("a 304 has a %d-byte body", len(body))
	}
	for name, h := range ref.Value.Headers {
		values := header.Values(name)
		switch {
		case len(values) == 0 && h.Value.Required:
			return fmt.Errorf("response header %q missing", name)
		case len(values) == 0:
			continue
		case len(values) > 1:
			return fmt.Errorf("response header %q sent %d times", name, len(values))
		}
		if err := h.Value.Schema.Value.VisitJSON(values[0], c.opts.SchemaValidationOptions...); err != nil {
			return fmt.Errorf("response header %q doesn't match schema: %w", name, err)
		}
	}
	return nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(zr)
}

// checkContract is harness.do's hook: every answer a test receives is
// validated against the document, and a violation fails that test.
func checkContract(t *testing.T, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.check(req, status, header, body); err != nil {
		t.Errorf("openapi.yaml: %v\nbody: %.2000s", err, body)
	}
}

// The document is a valid OpenAPI 3.0 document, and every operation that
// needs a token documents the refusals every authenticated route can give.
func TestOpenAPIDocumentValidates(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.Responses.Value("200") == nil {
				t.Errorf("%s: no 200 response", name)
			}
			authenticated := op.Security == nil || len(*op.Security) > 0
			for _, status := range []string{"401", "503"} {
				if documented := op.Responses.Value(status) != nil; authenticated && !documented {
					t.Errorf("%s needs a token but does not document %s", name, status)
				}
			}
			// The conditional-GET conventions apply to every GET under /api.
			if method == http.MethodGet && strings.HasPrefix(path, "/api/") && op.Responses.Value("304") == nil {
				t.Errorf("%s: no 304 response", name)
			}
		}
	}
}

// The document is served, unauthenticated, byte for byte as embedded, it
// parses, and it follows the /api conventions (ETag, 304, gzip).
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := h.get(t, "", OpenAPIPath)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get(echo.HeaderContentType), mimeYAML) {
		t.Fatalf("GET %s: %d %s", OpenAPIPath, r.Status, r.Header.Get(echo.HeaderContentType))
	}
	if !bytes.Equal(r.Body, openAPIDocument) {
		t.Error("the served document differs from the embedded one")
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.Body)
	if err != nil {
		t.Fatalf("the served document does not parse: %v", err)
	}
	if doc.Paths.Find("/api/customers/{id}") == nil {
		t.Error("the served document does not describe /api/customers/{id}")
	}
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if nm := h.get(t, "", OpenAPIPath, "If-None-Match", etag); nm.Status != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d, want 304", etag, nm.Status)
	}
	gz := h.get(t, "", OpenAPIPath, "Accept-Encoding", "gzip")
	if gz.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Accept-Encoding: gzip answered Content-Encoding %q", gz.Header.Get("Content-Encoding"))
	}
	if plain, err := gunzip(gz.Body); err != nil || !bytes.Equal(plain, openAPIDocument) {
		t.Errorf("the gzip-encoded document differs from the embedded one (%v)", err)
	}
}

// Every route the server registers is documented, and every documented
// operation is a registered route, so the two cannot drift apart.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, r := range h.server.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // echo's per-group 404 catch-alls, not routes
		}
		registered = append(registered, r.Method+" "+openAPITemplate(r.Path))
	}
	var documented []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(registered)
	slices.Sort(documented)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.yaml documents %s, which is not a route", d)
		}
	}
	if len(registered) == 0 {
		t.Fatal("no routes registered")
	}
}

// openAPITemplate spells an echo route path (/users/:id) as an OpenAPI
// path template (/users/{id}).
func openAPITemplate(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}

// The validation can fail: answers that break the document in the ways a
// rendering bug would are rejected, while the untouched answers pass.
func TestOpenAPIValidationRejects(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	owner := h.token(t, "owner")
	request := func(method, path string) *http.Request {
		req, err := http.NewRequest(method, h.http.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	// Real answers to mutate.
	type answer struct {
		req  *http.Request
		resp reply
	}
	fetch := func(path string, headers ...string) answer {
		t.Helper()
		r := h.do(t, http.MethodGet, path, owner, nil, headers...)
		if r.Status != http.StatusOK && r.Status != http.StatusNotModified {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		return answer{request(http.MethodGet, path), r}
	}
	distributor := fetch("/api/distributors/" + h.orgID(t, "d1"))
	customer := fetch("/api/customers/" + h.orgID(t, "d1r1c1"))
	list := fetch("/api/customers?page_size=2&sort_by=name")
	notModified := fetch("/api/customers/"+h.orgID(t, "d1r1c1"), "If-None-Match", customer.resp.Header.Get("ETag"))
	users := fetch("/api/users?page_size=2")
	user := fetch("/api/users/" + h.fixture.Users["d1r1c1"])

	// edit rewrites a JSON body through fn.
	edit := func(body []byte, fn func(env map[string]any)) []byte {
		t.Helper()
		var env map[string]any
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		fn(env)
		out, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	data := func(env map[string]any) map[string]any { return env["data"].(map[string]any) }
	firstItem := func(env map[string]any) map[string]any {
		return data(env)["customers"].([]any)[0].(map[string]any)
	}
	firstUser := func(env map[string]any) map[string]any {
		return data(env)["users"].([]any)[0].(map[string]any)
	}
	withoutHeader := func(h http.Header, name string) http.Header {
		h = h.Clone()
		h.Del(name)
		return h
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	gzipHeader := func(h http.Header) http.Header {
		h = h.Clone()
		h.Set("Content-Encoding", "gzip")
		return h
	}

	cases := []struct {
		name   string
		a      answer
		status int
		header http.Header
		body   []byte
		ok     bool
	}{
		{"distributor as answered", distributor, 200, distributor.resp.Header, distributor.resp.Body, true},
		{"customer as answered", customer, 200, customer.resp.Header, customer.resp.Body, true},
		{"list as answered", list, 200, list.resp.Header, list.resp.Body, true},
		{"304 as answered", notModified, 304, notModified.resp.Header, notModified.resp.Body, true},
		{"gzip-encoded, as answered", customer, 200, gzipHeader(customer.resp.Header), gzipped(customer.resp.Body), true},

		{"an extra key on an organization", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { data(e)["systems_count"] = 0 }), false},
		{"a required key missing", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { delete(data(e), "logto_id") }), false},
		{"suspended_by_org_id on a distributor", distributor, 200, distributor.resp.Header,
			edit(distributor.resp.Body, func(e map[string]any) { data(e)["suspended_by_org_id"] = nil }), false},
		{"suspended_by_org_id missing on a customer", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { delete(data(e), "suspended_by_org_id") }), false},
		{"rebranding_org_id without rebranding", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) {
				data(e)["rebranding_enabled"], data(e)["rebranding_org_id"] = false, "x"
			}), false},
		{"rebranding enabled without rebranding_org_id", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) {
				data(e)["rebranding_enabled"] = true
				delete(data(e), "rebranding_org_id")
			}), false},
		{"counts on a detail", distributor, 200, distributor.resp.Header,
			edit(distributor.resp.Body, func(e map[string]any) { data(e)["customers_count"] = 1 }), false},
		{"a malformed id", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { data(e)["id"] = "not-a-uuid" }), false},
		{"a malformed timestamp", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { data(e)["created_at"] = "yesterday" }), false},
		{"createdByUser left in custom_data", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) {
				data(e)["custom_data"].(map[string]any)["createdByUser"] = map[string]any{}
			}), false},
		{"deleted_at on a detail", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { data(e)["deleted_at"] = "2024-01-01T00:00:00Z" }), false},
		{"users as answered", users, 200, users.resp.Header, users.resp.Body, true},
		{"user as answered", user, 200, user.resp.Header, user.resp.Body, true},
		{"a user list item without organization", users, 200, users.resp.Header,
			edit(users.resp.Body, func(e map[string]any) { delete(firstUser(e), "organization") }), false},
		{"a user's role with an extra key", users, 200, users.resp.Header,
			edit(users.resp.Body, func(e map[string]any) {
				firstUser(e)["roles"].([]any)[0].(map[string]any)["description"] = ""
			}), false},
		{"can_be_impersonated on a user detail", user, 200, user.resp.Header,
			edit(user.resp.Body, func(e map[string]any) { data(e)["can_be_impersonated"] = false }), false},
		{"a user detail without deleted_by_org_id", user, 200, user.resp.Header,
			edit(user.resp.Body, func(e map[string]any) { delete(data(e), "deleted_by_org_id") }), false},
		{"an extra key in a list item", list, 200, list.resp.Header,
			edit(list.resp.Body, func(e map[string]any) { firstItem(e)["customer_count"] = 0 }), false},
		{"null instead of an empty list", list, 200, list.resp.Header,
			edit(list.resp.Body, func(e map[string]any) { data(e)["customers"] = nil }), false},
		{"next_page without a next page", list, 200, list.resp.Header,
			edit(list.resp.Body, func(e map[string]any) {
				p := data(e)["pagination"].(map[string]any)
				p["has_next"], p["next_page"] = false, 2
			}), false},
		{"null prev_page", list, 200, list.resp.Header,
			edit(list.resp.Body, func(e map[string]any) { data(e)["pagination"].(map[string]any)["prev_page"] = nil }), false},
		{"sort_by without sort_direction", list, 200, list.resp.Header,
			edit(list.resp.Body, func(e map[string]any) { delete(data(e)["pagination"].(map[string]any), "sort_direction") }), false},
		{"code differs from the status", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { e["code"] = 201 }), false},
		{"another route's message", customer, 200, customer.resp.Header,
			edit(customer.resp.Body, func(e map[string]any) { e["message"] = "reseller retrieved successfully" }), false},
		{"an undocumented status", customer, 418, customer.resp.Header, customer.resp.Body, false},
		{"no ETag", customer, 200, withoutHeader(customer.resp.Header, "ETag"), customer.resp.Body, false},
		{"no X-Cache", customer, 200, withoutHeader(customer.resp.Header, "X-Cache"), customer.resp.Body, false},
		{"no X-Request-Id", customer, 200, withoutHeader(customer.resp.Header, echo.HeaderXRequestID), customer.resp.Body, false},
		{"not JSON", customer, 200, withoutHeader(customer.resp.Header, echo.HeaderContentType), customer.resp.Body, false},
		{"gzip-encoded, broken", customer, 200, gzipHeader(customer.resp.Header),
			gzipped(edit(customer.resp.Body, func(e map[string]any) { delete(data(e), "name") })), false},
		{"gzip header on a plain body", customer, 200, gzipHeader(customer.resp.Header), customer.resp.Body, false},
		{"a 304 with a body", notModified, 304, notModified.resp.Header, []byte("{}"), false},
		{"a 304 without ETag", notModified, 304, withoutHeader(notModified.resp.Header, "ETag"), nil, false},
		{"a 304 where none is documented", answer{request(http.MethodPost, "/api/auth/logout"), customer.resp}, 304,
			notModified.resp.Header, nil, false},

		{"an undocumented path answering an entity's 404", answer{request(http.MethodGet, "/api/customers/x/stats"), customer.resp}, 404,
			customer.resp.Header, []byte(`{"code":404,"message":"customer not found","data":null}`), false},
		{"an undocumented path answering 200", answer{request(http.MethodGet, "/api/customers/"), list.resp}, 200,
			list.resp.Header, list.resp.Body, false},
		{"an undocumented method", answer{request(http.MethodDelete, "/api/customers"), list.resp}, 200,
			list.resp.Header, list.resp.Body, false},
		{"an undocumented path answering api not found", answer{request(http.MethodGet, "/api/customers/x/stats"), customer.resp}, 404,
			customer.resp.Header, []byte(`{"code":404,"message":"api not found","data":null}`), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.check(tc.a.req, tc.status, tc.header, tc.body)
			if tc.ok && err != nil {
				t.Errorf("rejected: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("accepted")
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}

	// The query of a documented path does not matter to routing; the path
	// does, escaped as echo sees it.
	for _, path := range []string{"/api/customers?page=abc&status=x&status=y", "/api/customers/a%2Fb", "/api/organizations?type=%00"} {
		if _, _, ok := c.find(request(http.MethodGet, path)); !ok {
			t.Errorf("%s: not matched to its operation", path)
		}
	}
	for _, path := range []string{"/api/customers/", "/api/customers/a/b", "/api/customer", "/api", "/api/", "/nope"} {
		if _, _, ok := c.find(request(http.MethodGet, path)); ok {
			t.Errorf("%s: matched to an operation", path)
		}
	}
}

// BenchmarkOpenAPICheck measures what the harness's validation adds to each
// request: one full page (100 organizations) checked against the document.
func BenchmarkOpenAPICheck(b *testing.B) {
	e, _, _ := benchServer(b)
	req := httptest.NewRequest(http.MethodGet, "/api/customers?page_size=100", nil)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	header := rec.Header().Clone()
	header.Set(echo.HeaderXRequestID, "bench") // the bench server has no request-id middleware
	var page struct {
		Data struct {
			Customers []json.RawMessage `json:"customers"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != http.StatusOK || len(page.Data.Customers) != 100 {
		b.Fatalf("%d, %d customers (%v)", rec.Code, len(page.Data.Customers), err)
	}
	c, err := loadContract()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(rec.Body.Len()))
	for b.Loop() {
		if err := c.check(req, rec.Code, header, rec.Body.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
