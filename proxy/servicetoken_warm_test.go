package proxy

import (
	"context"
	"testing"

	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// TestServiceTokensWarmFetchesKeysAhead checks why Warm exists: a verifier
// warmed while Logto answers verifies service tokens once Logto's JWKS
// endpoint is down — the first token it ever sees included — where a
// verifier that waited for its first token cannot.
func TestServiceTokensWarmFetchesKeysAhead(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	verifier := func() *ServiceTokens {
		v, err := NewServiceTokens(ServiceTokenConfig{Issuer: h.sim.Issuer(), Audience: h.fixture.APIResource.Indicator, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		return v
	}
	warmed, cold := verifier(), verifier()
	h.sim.ResetCalls()
	if err := warmed.Warm(); err != nil {
		t.Fatal(err)
	}
	if n := h.sim.Calls("GET /oidc/jwks"); n != 1 {
		t.Fatalf("Warm fetched the JWKS %d times, want once", n)
	}

	h.sim.Faults().SetScope(logtotest.ScopeOIDC)
	h.sim.Faults().SetOutage(true)
	tok := h.logtoToken(t, logtotest.UserTokenOptions{Scopes: []string{hierarchy.PermReadCustomers}})
	if _, err := warmed.Verify(context.Background(), tok); err != nil {
		t.Errorf("the warmed verifier refused a valid token with Logto down: %v", err)
	}
	if _, err := cold.Verify(context.Background(), tok); err == nil {
		t.Error("a verifier that never reached Logto accepted a token: the test proves nothing")
	}
}
