package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSuiteOutputParses runs every scenario for a fraction of a second
// against a tiny tree and checks the report: every scenario has a row whose
// cells parse, nothing failed, no Logto call was made in steady state, and
// the cold start listed the organizations exactly once. It measures nothing:
// the figures of so short a run mean nothing.
func TestSuiteOutputParses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute) // a liveness bound
	defer cancel()
	bin, err := buildProxy(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("self-started", func(t *testing.T) { selfStartedSuite(ctx, t, bin) })
	t.Run("target", func(t *testing.T) { targetSuite(ctx, t, bin) })
}

// selfStartedSuite runs every scenario with everything started by the tool.
func selfStartedSuite(ctx context.Context, t *testing.T, bin string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-proxy-bin", bin, "-duration", "300ms", "-warmup", "100ms", "-settle", "100ms", "-connections", "4",
		"-distributors", "2", "-resellers", "3", "-customers", "5", "-cold-orgs", "150", "-logto-latency", "2ms"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	out := stdout.String()
	rows := tableRows(t, out, tableHeader)
	for _, name := range []string{scCeiling, scGetCustomer, scGetCustomer + " @50%", scGetService, scList, scListFresh, scSearch,
		scCeiling + " (again, at the end)"} {
		cells, ok := rows[name]
		if !ok {
			t.Errorf("no row for %s in\n%s", name, out)
			continue
		}
		checkRow(t, name, cells)
	}

	if first := rows[scCeiling]; len(first) == 11 && first[10] != "100 %" {
		t.Errorf("the first ceiling measurement is not the reference: %q", first[10])
	}

	cold := tableRows(t, out, "| cold-start | organizations | Logto latency | first answer | Logto calls until then | organization listings |")
	cells, ok := cold["fresh process, empty Redis"]
	if !ok || len(cells) != 5 {
		t.Fatalf("cold-start row: %q in\n%s", cells, out)
	}
	if _, err := parseLatency(cells[2]); err != nil {
		t.Errorf("cold-start first answer %q: %v", cells[2], err)
	}
	if m := regexp.MustCompile(`^1 \((\d+) pages of (\d+)\)$`).FindStringSubmatch(cells[4]); m == nil || m[1] != m[2] {
		t.Errorf("cold-start listings %q, want exactly one listing", cells[4])
	}
}

// targetSuite drives a proxy started beforehand, with -target and tokens,
// as an operator would: Logto calls then come from the proxy's /metrics,
// and the cold start is skipped.
func targetSuite(ctx context.Context, t *testing.T, bin string) {
	tr, err := startTree(treeShape{distributors: 1, resellers: 2, customers: 3}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	rdb, err := startRedis(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rdb.close(ctx); err != nil {
			t.Error(err)
		}
	}()
	dist, err := tr.distributor()
	if err != nil {
		t.Fatal(err)
	}
	user, err := tr.addDistributorUser(dist)
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProxy(ctx, bin, proxyEnv(tr, rdb.url, rdb.newPrefix(), randomHex(32), time.Hour), t.TempDir()+"/proxy.log")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	client := newClient(2, false)
	if err := waitLoaded(ctx, client, p.base()); err != nil {
		t.Fatal(err)
	}
	session, err := exchange(ctx, client, p.base(), tr, user)
	if err != nil {
		t.Fatal(err)
	}
	service, err := serviceToken(ctx, client, tr)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-target", p.base(), "-token", session, "-service-token", service, "-scenarios",
		"ceiling,get-customer-service,cold-start", "-duration", "200ms", "-warmup", "50ms", "-settle", "0s", "-connections", "2"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	out := stdout.String()
	rows := tableRows(t, out, tableHeader)
	for _, name := range []string{scCeiling, scGetService} {
		cells, ok := rows[name]
		if !ok || len(cells) != 11 {
			t.Fatalf("row %s: %q in\n%s", name, cells, out)
		}
		if cells[8] != "0" || cells[9] != "n/a" || !strings.HasPrefix(cells[6], "≤ ") {
			t.Errorf("%s: Logto calls %q (want 0, from /metrics), proxy CPU %q (want n/a), proxy p99 %q", name, cells[8], cells[9], cells[6])
		}
	}
	if !strings.Contains(out, "skipped cold-start: needs the tool to start the proxy itself") {
		t.Errorf("cold-start not reported as skipped:\n%s", out)
	}
}

// checkRow checks one scenario's cells: load, req/s, p50, p90, p99, max,
// proxy p99, errors, Logto calls, proxy CPU/req, vs ceiling.
func checkRow(t *testing.T, name string, cells []string) {
	t.Helper()
	if len(cells) != 11 {
		t.Fatalf("%s: %d cells %q, want 11", name, len(cells), cells)
	}
	rps, err := strconv.Atoi(strings.ReplaceAll(cells[1], ",", ""))
	if err != nil || rps <= 0 {
		t.Errorf("%s: req/s %q", name, cells[1])
	}
	var prev time.Duration
	for i, label := range []string{"p50", "p90", "p99", "max"} {
		d, err := parseLatency(cells[2+i])
		if err != nil || d < prev {
			t.Errorf("%s: %s %q (%v), not a latency at least the previous percentile", name, label, cells[2+i], err)
		}
		prev = d
	}
	if bound, ok := strings.CutPrefix(cells[6], "≤ "); !ok {
		t.Errorf("%s: proxy p99 %q, want a bucket bound", name, cells[6])
	} else if _, err := parseLatency(bound); err != nil {
		t.Errorf("%s: proxy p99 %q: %v", name, cells[6], err)
	}
	if cells[7] != "0" {
		t.Errorf("%s: %s errors", name, cells[7])
	}
	if cells[8] != "0" {
		t.Errorf("%s: %s Logto calls in steady state, want none", name, cells[8])
	}
	if cells[9] != "n/a" && !regexp.MustCompile(`^\d+ µs$`).MatchString(cells[9]) {
		t.Errorf("%s: proxy CPU/req %q", name, cells[9])
	}
	if !regexp.MustCompile(`^\d+ %$`).MatchString(cells[10]) {
		t.Errorf("%s: vs ceiling %q", name, cells[10])
	}

}

// tableRows reads the Markdown table under header: first cell → the others.
func tableRows(t *testing.T, out, header string) map[string][]string {
	t.Helper()
	_, table, ok := strings.Cut(out, header+"\n")
	if !ok {
		t.Fatalf("no table %q in\n%s", header, out)
	}
	rows := map[string][]string{}
	for i, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i == 0 {
			continue // the alignment row
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows[cells[0]] = cells[1:]
	}
	return rows
}

// parseLatency reads fmtLatency's output back.
func parseLatency(s string) (time.Duration, error) {
	return time.ParseDuration(strings.ReplaceAll(s, " ", ""))
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-scenarios", "nope"},
		{"-scenarios", ""},
		{"-duration", "0s"},
		{"-settle", "-1s"},
		{"-gc-headroom-mb", "-5"},
		{"-connections", "0"},
		{"-rate", "-1"},
		{"-token", "x"},
		{"-cold-orgs", "3"},
		{"stray"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a reason", args, code, stderr.String())
		}
	}
}

func TestShapeForHasAtLeastTheOrganizationsAsked(t *testing.T) {
	for _, n := range []int{10, 150, 1000, 10000, 12345} {
		if got := shapeFor(n).orgs(); got < n || got > n+n/5+120 {
			t.Errorf("shapeFor(%d) has %d organizations", n, got)
		}
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{
		420 * time.Microsecond: "0.42 ms", 12340 * time.Microsecond: "12.3 ms", 1500 * time.Millisecond: "1.50 s",
	} {
		if got := fmtLatency(in); got != want {
			t.Errorf("fmtLatency(%v) = %q, want %q", in, got, want)
		}
	}
	m := measurement{latencies: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	if m.quantile(0.5) != 5 || m.quantile(0.9) != 9 || m.quantile(1) != 10 || (measurement{}).quantile(0.5) != 0 {
		t.Errorf("quantiles %v %v %v", m.quantile(0.5), m.quantile(0.9), m.quantile(1))
	}
}

func TestProxyQuantile(t *testing.T) {
	counts := make([]float64, len(latencyBounds)+1)
	// 100 requests: 90 under 0.1 ms, 9 more under 0.25 ms, the last under 1 ms.
	for i := range latencyBounds {
		switch {
		case i == 0:
			counts[i] = 90
		case i < 3:
			counts[i] = 99
		default:
			counts[i] = 100
		}
	}
	counts[len(latencyBounds)] = 100
	m := measurement{deltas: [][]float64{{0}, {0}, {0}, counts}}
	for q, want := range map[float64]time.Duration{0.5: 100 * time.Microsecond, 0.99: 250 * time.Microsecond, 1: time.Millisecond} {
		if got, ok := m.proxyQuantile(q); !ok || got != want {
			t.Errorf("proxyQuantile(%v) = %v %v, want %v", q, got, ok, want)
		}
	}
	if _, ok := (measurement{deltas: [][]float64{nil, nil, nil, nil}}).proxyQuantile(0.99); ok {
		t.Error("a quantile out of an unread histogram")
	}
	if got := m.delta(probeCalls); got != 0 {
		t.Errorf("delta %v", got)
	}
	if got := (measurement{}).delta(probeCalls); !math.IsNaN(got) {
		t.Errorf("delta of nothing read: %v, want NaN", got)
	}
}

// TestRuntimeEnvPassedOn: the Go runtime's settings reach the proxy, and
// nothing else of the caller's environment does.
func TestRuntimeEnvPassedOn(t *testing.T) {
	env := map[string]string{"GOGC": "400", "GOMEMLIMIT": "1GiB", "REDIS_ADDRS": "x:1", "LOG_LEVEL": "debug"}
	got := proxyRuntimeEnv(func(k string) string { return env[k] })
	if want := []string{"GOGC=400", "GOMEMLIMIT=1GiB"}; !slices.Equal(got, want) {
		t.Errorf("passed on %q, want %q", got, want)
	}
}
