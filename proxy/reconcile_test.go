package proxy

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logto-proxy/logto-proxy/cache"
)

// newTestReconciler reconciles the harness's views every interval, with
// metrics of its own.
func newTestReconciler(t *testing.T, h *harness, interval time.Duration) (*Reconciler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := NewReconciler(ReconcilerConfig{Hierarchy: h.view, Users: h.users, Interval: interval,
		Metrics: NewMetrics(reg, time.Now), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, reg
}

// Changes no webhook announced — the harness has no receiver — are served
// after one reconcile interval, and counted as differences.
func TestReconcilerRepairsWhatNoWebhookSaid(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	d1 := h.orgID(t, "d1")
	if _, err := h.sim.UpdateOrganization(d1, map[string]any{"name": "renamed, unannounced"}); err != nil {
		t.Fatal(err)
	}
	user, err := h.sim.CreateUser(map[string]any{"username": "unannounced",
		"customData": map[string]any{"organizationId": h.orgID(t, "d1r1")}})
	if err != nil {
		t.Fatal(err)
	}
	r, reg := newTestReconciler(t, h, 200*time.Millisecond)
	r.Start()
	r.Start() // a second Start is a no-op

	waitFor(t, "the rename served", func() bool {
		var org struct{ Name string }
		got := h.get(t, "owner", "/api/distributors/"+d1)
		return json.Unmarshal(got.Env.Data, &org) == nil && org.Name == "renamed, unannounced"
	})
	waitFor(t, "the new user served", func() bool { return h.get(t, "owner", "/api/users/"+user.ID).Status == http.StatusOK })
	// A reconcile is counted once it returns, just after its snapshot is
	// served.
	for _, want := range []struct{ view, kind string }{{cache.ViewHierarchy, "changed"}, {cache.ViewUsers, "added"}} {
		waitFor(t, want.view+" differences counted", func() bool {
			return gathered(t, reg, "logto_proxy_reconcile_differences_total", "view", want.view, "kind", want.kind) >= 1 &&
				gathered(t, reg, "logto_proxy_reconcile_runs_total", "view", want.view, "result", "reconciled") >= 1
		})
	}
}

// A reconcile finding a listing younger than the interval (another
// replica's) skips; one finding it older lists and counts.
func TestReconcilerSkipsARecentListing(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r, reg := newTestReconciler(t, h, time.Hour)
	ctx := context.Background()
	if ok := r.once(ctx, r.targets[0]); !ok {
		t.Fatal("reconcile failed")
	}
	if got := gathered(t, reg, "logto_proxy_reconcile_runs_total", "view", cache.ViewHierarchy, "result", "skipped"); got != 1 {
		t.Errorf("skipped runs = %v, want 1", got)
	}
	h.sim.ResetCalls()
	r.cfg.Interval = time.Nanosecond
	if ok := r.once(ctx, r.targets[0]); !ok {
		t.Fatal("reconcile failed")
	}
	if got := gathered(t, reg, "logto_proxy_reconcile_runs_total", "view", cache.ViewHierarchy, "result", "reconciled"); got != 1 {
		t.Errorf("reconciled runs = %v, want 1", got)
	}
	if h.sim.Calls("GET /api/organizations") == 0 {
		t.Error("the reconcile did not list Logto")
	}
}

func TestReconcilerFailureIsCountedAndBacksOff(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r, reg := newTestReconciler(t, h, time.Minute)
	h.sim.Faults().SetErrorRate(1, http.StatusInternalServerError)
	r.cfg.Interval = time.Nanosecond
	if ok := r.once(context.Background(), r.targets[0]); ok {
		t.Fatal("a reconcile against a failing Logto succeeded")
	}
	if got := gathered(t, reg, "logto_proxy_reconcile_runs_total", "view", cache.ViewHierarchy, "result", "failed"); got != 1 {
		t.Errorf("failed runs = %v, want 1", got)
	}
	r.cfg.Interval = time.Minute
	if d := r.delay(r.targets[0], true); d > time.Minute || d < 54*time.Second {
		t.Errorf("delay after a failure %v, want an interval less its jitter", d)
	}
}

func TestReconcilerDelay(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &Reconciler{cfg: ReconcilerConfig{Interval: 10 * time.Minute, Now: func() time.Time { return now }}}
	target := func(listed time.Time, loaded bool) reconcileTarget {
		return reconcileTarget{listed: func() (time.Time, bool) { return listed, loaded }}
	}
	for range 100 { // the jitter is random: every draw must respect the bounds
		if d := r.delay(target(time.Time{}, false), false); d < time.Minute || d > 2*time.Minute {
			t.Fatalf("nothing loaded: delay %v, want a tenth of the interval, jittered", d)
		}
		if d := r.delay(target(now, true), false); d < 9*time.Minute || d > 10*time.Minute {
			t.Fatalf("listed now: delay %v, want within the last tenth of the interval", d)
		}
		if d := r.delay(target(now.Add(-4*time.Minute), true), false); d < 5*time.Minute || d > 6*time.Minute {
			t.Fatalf("listed 4m ago: delay %v, want 5m to 6m", d)
		}
		if d := r.delay(target(now.Add(-time.Hour), true), false); d != 0 {
			t.Fatalf("overdue: delay %v, want none", d)
		}
	}
}

func TestNewReconcilerValidates(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	metrics := NewMetrics(prometheus.NewRegistry(), time.Now)
	for name, cfg := range map[string]ReconcilerConfig{
		"no view":     {Interval: time.Minute, Metrics: metrics},
		"no interval": {Hierarchy: h.view, Metrics: metrics},
		"no metrics":  {Hierarchy: h.view, Interval: time.Minute},
	} {
		if _, err := NewReconciler(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, err := NewReconciler(ReconcilerConfig{Hierarchy: h.view, Interval: time.Minute, Metrics: metrics})
	if err != nil || len(r.targets) != 1 {
		t.Errorf("hierarchy only: %v, %d targets", err, len(r.targets))
	}
	r.Close() // closing what never started is fine
}
