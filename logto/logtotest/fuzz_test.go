package logtotest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// FuzzManagementAPI sends arbitrary paths, queries and bodies to the
// Management API and the token endpoint: the simulator must answer every one
// with a clean status and never panic or fail internally.
func FuzzManagementAPI(f *testing.F) {
	s := newSim(f, logtotest.Options{})
	fx, err := s.SeedFixture()
	if err != nil {
		f.Fatal(err)
	}
	token := managementToken(f, s)
	org, user := fx.Orgs["d1"], fx.Users["d1"]
	seeds := []struct{ method, target, body string }{
		{"GET", "/api/organizations?page=2&page_size=3&q=%25d_", ""},
		{"GET", "/api/organizations?page=1e309&page_size=-0", ""},
		{"GET", "/api/users?search.id=a&search.id=b&mode.id=exact", ""},
		{"GET", "/api/users?search=%5C&mode=posix", ""},
		{"GET", "/api/users?search.=x&mode.=similar_to&isCaseSensitive=true", ""},
		{"GET", "/api/users?search=(&mode=similar_to&isCaseSensitive=1", ""},
		{"POST", "/api/organizations", `{"name":"x","customData":{"a":[1,{"b":null}]}}`},
		{"POST", "/api/organizations", `{"name":`},
		{"PATCH", "/api/organizations/" + org, `{"customData":null,"color":"red"}`},
		{"POST", "/api/organizations/" + org + "/users", `{"userIds":[1,"",null]}`},
		{"PUT", "/api/organizations/" + org + "/users/" + user + "/roles", `{"organizationRoleNames":["Owner","?"]}`},
		{"PATCH", "/api/users/" + user + "/custom-data", `{"customData":[]}`},
		{"POST", "/api/users", `{"username":"a b","primaryEmail":7}`},
		{"POST", "/api/hooks", `{"name":"h","events":["User.Created"],"config":{"url":"::"}}`},
		{"POST", "/oidc/token", `grant_type=client_credentials&resource=%zz`},
		{"GET", "/oidc/me", ""},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.target, sd.body)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, target, body string) {
		switch method {
		case "GET", "POST", "PUT", "PATCH", "DELETE":
		default:
			method = "GET"
		}
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		req, err := http.NewRequest(method, "http://sim"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if strings.HasPrefix(target, "/oidc/token") {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Errorf("%s %s %q: %d %s", method, target, body, rec.Code, rec.Body)
		}
	})
}
