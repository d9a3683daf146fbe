package logto

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// TestCloseReleasesIdleConnections checks that a closed client leaves no
// connection open to Logto (a stopping replica would otherwise hold them
// until Logto's idle timeout), and still works if called again.
func TestCloseReleasesIdleConnections(t *testing.T) {
	var open atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := logtotest.New(logtotest.Options{Endpoint: "http://" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.Listener = ln
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	id := slices.Collect(maps.Keys(seedOrganizations(t, sim, 1)))[0]

	c := newTestClient(t, sim, nil)
	if _, err := c.GetOrganization(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if open.Load() == 0 {
		t.Fatal("no connection kept open after a call: nothing to close")
	}
	c.Close()
	waitFor(t, func() bool { return open.Load() == 0 })
	if _, err := c.GetOrganization(context.Background(), id); err != nil {
		t.Fatalf("a call after Close: %v", err)
	}
}
