package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// row is one scenario run of the table.
type row struct {
	label string
	spec  loadSpec
	m     measurement
}

// Indexes of the bench's probes in measurement.deltas (see bench.run).
const (
	probeCalls = iota
	probeCPU
	probeSelfCPU
	probeLatency
)

// delta is how much the single counter of probe i grew, NaN when unknown.
func (m measurement) delta(i int) float64 {
	if i >= len(m.deltas) || len(m.deltas[i]) != 1 {
		return math.NaN()
	}
	return m.deltas[i][0]
}

// proxyQuantile is the upper bound of the proxy's own latency histogram
// bucket holding its q quantile over the window (the time from the
// request's arrival in the handler chain to its answer); ok is false when
// the histogram could not be read or counted nothing.
func (m measurement) proxyQuantile(q float64) (time.Duration, bool) {
	if probeLatency >= len(m.deltas) || len(m.deltas[probeLatency]) != len(latencyBounds)+1 {
		return 0, false
	}
	counts := m.deltas[probeLatency]
	total := counts[len(latencyBounds)]
	if total <= 0 {
		return 0, false
	}
	for i, bound := range latencyBounds {
		if counts[i] >= q*total {
			return time.Duration(bound * float64(time.Second)), true
		}
	}
	return 0, false // beyond the last bucket
}

// selfCPU reads the CPU time this process (the load generator, and the
// simulator when it runs here) has used, in seconds.
func selfCPU(context.Context) (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), true
}

// report is everything the tool prints.
type report struct {
	cfg     config
	machine string
	setup   []string
	rows    []row
	cold    *coldResult
	skipped []string
}

// tableHeader is the table's first line; the test reads the table by it.
const tableHeader = "| scenario | load | req/s | p50 | p90 | p99 | max | proxy p99 | errors | Logto calls | proxy CPU/req | vs ceiling |"

// print writes the report as Markdown, ready for the README.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "machine: %s\n", r.machine)
	for _, s := range r.setup {
		fmt.Fprintln(w, s)
	}
	fmt.Fprintf(w, "each scenario: %s of warm-up, then %s measured, after %s of settling load; the load generator runs on the same machine\n",
		r.cfg.warmup, r.cfg.duration, r.cfg.settle)
	fmt.Fprintln(w, "latencies as the load generator sees them; proxy p99: the bucket of the proxy's own latency histogram holding its p99")
	fmt.Fprintln(w)

	// The reference is the ceiling measured first; its second measurement,
	// at the end, shows how far the machine drifted during the run.
	ceiling := math.NaN()
	for _, row := range r.rows {
		if row.label == scCeiling {
			ceiling = row.m.rps()
			break
		}
	}
	fmt.Fprintln(w, tableHeader)
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, row := range r.rows {
		m := row.m
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s |\n",
			row.label, describeLoad(row.spec), thousands(int(math.Round(m.rps()))),
			fmtLatency(m.quantile(0.50)), fmtLatency(m.quantile(0.90)), fmtLatency(m.quantile(0.99)), fmtLatency(m.quantile(1)),
			fmtBound(m.proxyQuantile(0.99)), m.errors, fmtCount(m.delta(probeCalls)), fmtCPU(m.delta(probeCPU), m.requests),
			fmtRatio(m.rps(), ceiling))
	}
	if r.cold != nil {
		c := r.cold
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| cold-start | organizations | Logto latency | first answer | Logto calls until then | organization listings |")
		fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
		fmt.Fprintf(w, "| fresh process, empty Redis | %s | %s | %s | %d | %s (%d pages of %d) |\n",
			thousands(c.orgs), c.latency, fmtLatency(c.firstAnswer), c.callsFirst,
			strconv.FormatFloat(float64(c.pages)/float64(max(c.perListing, 1)), 'f', -1, 64), c.pages, c.perListing)
	}
	for _, row := range r.rows {
		if row.m.errors > 0 {
			fmt.Fprintf(w, "\n%s: first error: %s\n", row.label, row.m.firstErr)
		}
	}
	for _, s := range r.skipped {
		fmt.Fprintf(w, "\nskipped %s\n", s)
	}
}

// describeLoad is the load column: connections, and the rate when fixed.
func describeLoad(s loadSpec) string {
	if s.rate > 0 {
		return fmt.Sprintf("%s req/s fixed, %d conns", thousands(int(math.Round(s.rate))), s.connections)
	}
	return fmt.Sprintf("%d conns", s.connections)
}

// fmtLatency prints a latency in milliseconds, with more digits when small.
func fmtLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
}

// fmtBound prints a histogram bucket bound as "≤ latency", or n/a.
func fmtBound(d time.Duration, ok bool) string {
	if !ok {
		return "n/a"
	}
	return "≤ " + fmtLatency(d)
}

// fmtCount prints a probe's delta as a whole number, or n/a.
func fmtCount(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return thousands(int(math.Round(v)))
}

// fmtCPU prints CPU seconds spread over n requests as µs per request.
func fmtCPU(seconds float64, n int) string {
	if math.IsNaN(seconds) || n == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(seconds*1e6/float64(n), 'f', 0, 64) + " µs"
}

// fmtRatio prints rps as a percentage of ceiling.
func fmtRatio(rps, ceiling float64) string {
	if math.IsNaN(ceiling) || ceiling <= 0 {
		return "n/a"
	}
	return strconv.FormatFloat(100*rps/ceiling, 'f', 0, 64) + " %"
}

// thousands prints n with comma separators.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// describeMachine names the CPU, the core count, the memory, the Go version
// and the load average before the run (the machine may be shared).
func describeMachine() string {
	model, mem, load := "unknown CPU", "", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB")); err == nil {
					mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
				}
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) >= 3 {
			load = fmt.Sprintf(", load average %s %s %s before the run", f[0], f[1], f[2])
		}
	}
	return fmt.Sprintf("%d × %s%s, %s %s/%s%s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, load)
}
