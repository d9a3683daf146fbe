package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/cache/cachetest"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// testRedisURL is the Redis the replicas of one test share: REDIS_URL when
// set (CI's real server, keys under a prefix unique to the test and deleted
// afterwards), else an embedded one.
func testRedisURL(t testing.TB) (url, prefix string) {
	t.Helper()
	prefix = cachetest.Prefix(t)
	if url = os.Getenv("REDIS_URL"); url != "" {
		c, _ := cachetest.Client(t) // cleans the prefix up at the end
		t.Cleanup(func() { _ = cachetest.DeletePrefix(context.Background(), c, prefix) })
		return url, prefix
	}
	e, err := cache.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.URL(), prefix
}

// newSim starts a simulator holding the fixture and a bulk tree.
func newSim(t *testing.T, bulk logtotest.BulkOptions) *logtotest.Server {
	t.Helper()
	sim, err := logtotest.New(logtotest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	if _, err := sim.SeedFixture(); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.SeedBulk(bulk); err != nil {
		t.Fatal(err)
	}
	return sim
}

// replicaConfig points a replica at the simulator and the shared Redis.
func replicaConfig(t *testing.T, sim *logtotest.Server, redisURL, prefix string) config {
	t.Helper()
	appID, secret := sim.M2MCredentials()
	c, err := loadConfig([]string{"-listen", "127.0.0.1:0"}, envOf(map[string]string{
		"LOGTO_ENDPOINT":       sim.URL(),
		"LOGTO_M2M_APP_ID":     appID,
		"LOGTO_M2M_APP_SECRET": secret,
		"JWT_SECRET":           strings.Repeat("s", 32),
		"REDIS_URL":            redisURL,
		"REDIS_PREFIX":         prefix,
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startReplica builds and starts one replica with the production wiring,
// its logs discarded.
func startReplica(t testing.TB, cfg config) *app {
	t.Helper()
	return startReplicaLogging(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startReplicaLogging is startReplica with the logger given; the replica is
// shut down when the test ends.
func startReplicaLogging(t testing.TB, cfg config, log *slog.Logger) *app {
	t.Helper()
	a, err := newApp(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return a
}

func TestColdStartOfThousandReadersListsLogtoOnce(t *testing.T) {
	sim := newSim(t, logtotest.BulkOptions{Distributors: 10, ResellersPerDistributor: 10, CustomersPerReseller: 24})
	redisURL, prefix := testRedisURL(t)
	sim.ResetCalls()

	a := startReplica(t, replicaConfig(t, sim, redisURL, prefix))
	const readers = 1000
	var wg sync.WaitGroup
	gens := make([]uint64, readers)
	sizes := make([]int, readers)
	errs := make(chan error, readers)
	start := make(chan struct{})
	for i := range readers {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			snap, err := a.view.Current(ctx)
			if err != nil {
				errs <- err
				return
			}
			gens[i], sizes[i] = snap.Generation, snap.Tree.Len()
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("reader: %v", err)
	}
	orgs := sizes[0]
	// 11 fixture organizations (the Owner among them) + 10 + 100 + 2,400.
	if orgs != 2521 {
		t.Fatalf("tree has %d organizations, want 2521", orgs)
	}
	for i := range readers {
		if gens[i] != gens[0] || sizes[i] != orgs {
			t.Fatalf("reader %d saw generation %d with %d orgs, reader 0 saw %d with %d", i, gens[i], sizes[i], gens[0], orgs)
		}
	}
	pages := int64((orgs + 99) / 100)
	if got := sim.Calls("GET /api/organizations"); got != pages {
		t.Errorf("Logto saw %d organization list calls, want one full listing of %d pages", got, pages)
	}
	if got := sim.Calls("POST /oidc/token"); got != 1 {
		t.Errorf("Logto saw %d token requests, want 1", got)
	}
	for key, n := range sim.CallCounts() {
		switch {
		case key == "GET /api/users" || key == "GET /api/roles":
			// The users view warms up after the hierarchy: one listing at most.
			if n > 1 {
				t.Errorf("the users view listed %s %d times", key, n)
			}
		case n > 0 && key != "GET /api/organizations" && key != "POST /oidc/token":
			t.Errorf("unexpected Logto calls: %s × %d", key, n)
		}
	}
}

func TestSecondReplicaLoadsSnapshotWithoutCallingLogto(t *testing.T) {
	sim := newSim(t, logtotest.BulkOptions{Distributors: 5, ResellersPerDistributor: 5, CustomersPerReseller: 5})
	redisURL, prefix := testRedisURL(t)
	first := startReplica(t, replicaConfig(t, sim, redisURL, prefix))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	built, err := first.view.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	builtUsers, err := first.users.Current(ctx, built.Tree)
	if err != nil {
		t.Fatal(err)
	}

	sim.ResetCalls()
	second := startReplica(t, replicaConfig(t, sim, redisURL, prefix))
	loaded, err := second.view.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	loadedUsers, err := second.users.Current(ctx, loaded.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if loadedUsers.Generation != builtUsers.Generation || loadedUsers.Users.Len() != builtUsers.Users.Len() {
		t.Fatalf("second replica serves users generation %d (%d users), first built %d (%d users)",
			loadedUsers.Generation, loadedUsers.Users.Len(), builtUsers.Generation, builtUsers.Users.Len())
	}
	if loaded.Generation != built.Generation || loaded.Tree.Len() != built.Tree.Len() {
		t.Fatalf("second replica serves generation %d (%d orgs), first built %d (%d orgs)",
			loaded.Generation, loaded.Tree.Len(), built.Generation, built.Tree.Len())
	}
	for key, n := range sim.CallCounts() {
		if n != 0 {
			t.Errorf("second replica called Logto: %s × %d", key, n)
		}
	}
}

// TestDemoServes runs the README's first command the way main does and
// checks that it comes up, answers, and stops on its signal.
func TestDemoServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	env := map[string]string{"REDIS_PREFIX": cachetest.Prefix(t)}
	if url := os.Getenv("REDIS_URL"); url != "" {
		env["REDIS_URL"] = url
		c, _ := cachetest.Client(t)
		t.Cleanup(func() { _ = cachetest.DeletePrefix(context.Background(), c, env["REDIS_PREFIX"]) })
	}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-demo", "-listen", "127.0.0.1:0"}, envOf(env), w, io.Discard)
		_ = w.Close()
	}()

	lines := bufio.NewScanner(out)
	var banner, readyURL string
	deadline := time.After(60 * time.Second)
	got := make(chan string)
	go func() {
		for lines.Scan() {
			got <- lines.Text()
		}
		close(got)
	}()
	for readyURL == "" {
		select {
		case line, ok := <-got:
			if !ok {
				t.Fatalf("demo exited before announcing itself (banner %q)", banner)
			}
			if strings.HasPrefix(line, "logto-proxy demo is up") {
				banner = line
			}
			if f := strings.Fields(line); len(f) == 3 && f[0] == "curl" && strings.HasSuffix(f[2], "/readyz") {
				readyURL = f[2]
			}
		case <-deadline:
			t.Fatal("demo did not come up within 60s")
		}
	}
	go func() {
		for range got { // keep draining so the demo never blocks on stdout
		}
	}()
	if !strings.Contains(banner, "organizations") {
		t.Errorf("banner %q does not report the organizations", banner)
	}
	resp, err := http.Get(readyURL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("demo /readyz answered %d, want 200", resp.StatusCode)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited with %d after its stop signal, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop within 20s of its signal")
	}
}
