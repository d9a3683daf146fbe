package logtotest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// attempt calls the Management API with a client deadline and reports the
// transport error, if any.
func (a *api) attempt(path string, timeout time.Duration) (response, error) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := newRequest(a.t, http.MethodGet, a.s.URL()+"/api"+path, nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+a.token)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: body}, err
}

func TestFaultLatencyAndHang(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	f := s.Faults()

	f.SetLatency(time.Hour)
	if _, err := a.attempt("/organizations", 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with latency: err = %v, want the client to give up", err)
	}
	f.SetLatency(0)
	f.SetHang(true)
	if _, err := a.attempt("/organizations", 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with hang: err = %v, want the client to give up", err)
	}
	f.SetHang(false)
	if res, err := a.attempt("/organizations", 10*time.Second); err != nil || res.status != http.StatusOK {
		t.Errorf("after the faults: %v %d", err, res.status)
	}
	// The token endpoint is outside the default scope.
	f.SetHang(true)
	managementToken(t, s)

	// Close releases a hung request.
	done := make(chan error, 1)
	go func() {
		_, err := a.attempt("/organizations", time.Hour)
		done <- err
	}()
	for s.Calls("GET /api/organizations") < 4 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Errorf("hung request answered after Close")
	}
}

func TestFaultErrorRate(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	s.Faults().SetErrorRate(1, http.StatusServiceUnavailable)
	for range 5 {
		if res := a.get("/organizations"); res.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", res.status)
		}
	}
	managementToken(t, s) // /oidc is not in scope
	s.Faults().SetErrorRate(0.5, http.StatusInternalServerError)
	seen := map[int]int{}
	for range 200 {
		seen[a.get("/organizations").status]++
	}
	if seen[http.StatusOK] == 0 || seen[http.StatusInternalServerError] == 0 || len(seen) != 2 {
		t.Errorf("error rate 0.5 over 200 calls: %v", seen)
	}
	s.Faults().SetErrorRate(0, 0)
	must(t, a.get("/organizations"), http.StatusOK)
}

func TestFaultRateLimit(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	s.Faults().RateLimit(2, 1500*time.Millisecond)
	for i := range 2 {
		res := a.get("/organizations")
		if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "2" ||
			res.object(t)["code"] != "request.rate_limited" {
			t.Errorf("call %d: %d Retry-After %q %s", i, res.status, res.header.Get("Retry-After"), res.body)
		}
	}
	must(t, a.get("/organizations"), http.StatusOK)
}

func TestFaultOutage(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	s.Faults().SetOutage(true)
	if _, err := a.attempt("/organizations", 10*time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("outage: err = %v, want a dropped connection", err)
	}
	if _, err := a.attempt("/unknown-route", 10*time.Second); err == nil {
		t.Errorf("outage must drop unmatched /api routes too")
	}
	if s.Calls("GET /api/organizations") != 1 {
		t.Errorf("dropped calls must be counted: %d", s.Calls("GET /api/organizations"))
	}
	s.Faults().SetOutage(false)
	must(t, a.get("/organizations"), http.StatusOK)
}

func TestFaultTrickle(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	createOrgs(t, s, 20, "A fairly long organization name to make the body bigger ")
	a := newAPI(t, s)
	want := must(t, a.get("/organizations"), http.StatusOK).body

	s.Faults().SetTrickle(1 << 20)
	res, err := a.attempt("/organizations", 10*time.Second)
	if err != nil || string(res.body) != string(want) {
		t.Errorf("trickled body differs: %v", err)
	}
	s.Faults().SetTrickle(50) // a ~4 KB body would take over a minute
	res, err = a.attempt("/organizations", 200*time.Millisecond)
	if err == nil {
		t.Errorf("slow body read completed: %d bytes", len(res.body))
	}
}

func TestFaultScope(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	a := newAPI(t, s)
	f := s.Faults()
	f.SetScope(logtotest.ScopeOIDC)
	f.SetErrorRate(1, http.StatusBadGateway)
	id, secret := s.M2MCredentials()
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {s.ManagementResource()}, "scope": {"all"}}
	if res := tokenForm(t, s, form, id, secret); res.status != http.StatusBadGateway {
		t.Errorf("token endpoint in scope: %d", res.status)
	}
	must(t, a.get("/organizations"), http.StatusOK)
	f.SetScope(logtotest.ScopeAll)
	if res := a.get("/organizations"); res.status != http.StatusBadGateway {
		t.Errorf("ScopeAll: /api answered %d", res.status)
	}
	f.Reset()
	must(t, a.get("/organizations"), http.StatusOK)
	must(t, tokenForm(t, s, form, id, secret), http.StatusOK)
}

func TestListingFaults(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	createOrgs(t, s, 45, "Org ")
	a := newAPI(t, s)
	f := s.Faults()
	page := func(n int) ([]string, string) {
		res := must(t, a.get("/organizations?page_size=20&page="+itoa(n)), http.StatusOK)
		return ids(t, res), res.header.Get("Total-Number")
	}
	full := func() []string {
		return ids(t, must(t, a.get("/organizations?page_size=100"), http.StatusOK))
	}

	before := full()
	f.ReshuffleOrganizations()
	after := full()
	if slices.Equal(before, after) || !sameSet(before, after) {
		t.Errorf("ReshuffleOrganizations: same order or different set")
	}
	if !slices.Equal(after, full()) {
		t.Errorf("order must be stable again after a one-off reshuffle")
	}
	f.SetReshuffleEveryPage(true)
	if slices.Equal(full(), full()) {
		t.Errorf("reshuffle on every page: two listings in the same order")
	}
	f.SetReshuffleEveryPage(false)

	f.ShortPages(1)
	short, total := page(1)
	if len(short) != 19 || total != "45" {
		t.Errorf("short page: %d items, Total-Number %s", len(short), total)
	}
	if again, _ := page(1); len(again) != 20 {
		t.Errorf("ShortPages(1) lasted more than one page")
	}

	p1, _ := page(1)
	f.DuplicateAcrossPages(1)
	p2, _ := page(2)
	if p2[0] != p1[len(p1)-1] {
		t.Errorf("duplicate across pages: page 2 starts with %s, page 1 ends with %s", p2[0], p1[len(p1)-1])
	}
	if normal, _ := page(2); normal[0] == p1[len(p1)-1] {
		t.Errorf("DuplicateAcrossPages(1) lasted more than one page")
	}

	f.DriftTotalNumber(2, 3)
	_, t1 := page(1)
	_, t2 := page(2)
	_, t3 := page(3)
	if t1 != "48" || t2 != "48" || t3 != "45" {
		t.Errorf("drift: %s %s %s", t1, t2, t3)
	}
}

func TestCallCounters(t *testing.T) {
	s := newSim(t, logtotest.Options{})
	id := createOrgs(t, s, 1, "Org ")[0]
	a := newAPI(t, s)
	a.get("/organizations")
	a.get("/organizations")
	a.get("/organizations/" + id)
	a.get("/organizations/nope")
	s.Faults().RateLimit(1, 0)
	a.get("/organizations")

	want := map[string]int64{
		"POST /oidc/token":            1,
		"GET /api/organizations":      3,
		"GET /api/organizations/{id}": 2,
	}
	if got := s.CallCounts(); len(got) != len(want) {
		t.Errorf("CallCounts = %v, want %v", got, want)
	}
	for k, n := range want {
		if s.Calls(k) != n {
			t.Errorf("Calls(%q) = %d, want %d", k, s.Calls(k), n)
		}
	}
	if s.Calls("GET /api/nothing") != 0 {
		t.Errorf("unknown key counted")
	}
	s.ResetCalls()
	if got := s.CallCounts(); len(got) != 0 {
		t.Errorf("after ResetCalls: %v", got)
	}
}
