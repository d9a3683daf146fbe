package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// request is one request of a scenario: a path under the proxy's base URL
// and the bearer token to send ("" for none).
type request struct {
	path  string
	token string
}

// scenario is a named stream of requests. next must be safe to call from
// several workers at once, each with its own rng.
type scenario struct {
	name string
	// route is the route template the proxy files the requests under in
	// its metrics.
	route string
	next  func(rng *rand.Rand) request
}

// loadSpec is how hard and how long a scenario is driven.
type loadSpec struct {
	connections int
	// rate is the total requests per second over all connections; 0 drives
	// a closed loop, each connection sending its next request as soon as
	// the previous one is answered.
	rate             float64
	warmup, duration time.Duration
	seed             uint64
}

// measurement is what one scenario run measured.
type measurement struct {
	requests int
	errors   int
	firstErr string
	elapsed  time.Duration
	// latencies are sorted ascending.
	latencies []time.Duration
	// deltas are how much each probe's counters grew over the measured
	// window; nil where a probe could not be read.
	deltas [][]float64
}

// rps is the measured throughput.
func (m measurement) rps() float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(m.requests) / m.elapsed.Seconds()
}

// quantile is the latency below which a share q of the requests finished
// (nearest rank); 0 without requests.
func (m measurement) quantile(q float64) time.Duration {
	n := len(m.latencies)
	if n == 0 {
		return 0
	}
	i := int(q*float64(n)+0.5) - 1
	return m.latencies[min(max(i, 0), n-1)]
}

// worker is one connection's share of a run.
type worker struct {
	latencies []time.Duration
	errors    int
	firstErr  string
}

// driver is one drive of a scenario: what to send, where, and its window.
type driver struct {
	ctx         context.Context
	client      *http.Client
	base        string
	sc          scenario
	spec        loadSpec
	begin       time.Time
	from, until time.Time // the measured window
}

// drive runs sc against base as spec says: spec.warmup of unmeasured load,
// then spec.duration measured. A request is measured when it is (or, at a
// fixed rate, was due to be) sent inside the measured window. Each probe
// is read when the measured window opens and when it closes.
func drive(ctx context.Context, client *http.Client, base string, sc scenario, spec loadSpec, probes []probe) measurement {
	begin := time.Now()
	from := begin.Add(spec.warmup)
	until := from.Add(spec.duration)
	ctx, cancel := context.WithDeadline(ctx, until.Add(10*time.Second))
	defer cancel()
	r := &driver{ctx: ctx, client: client, base: base, sc: sc, spec: spec, begin: begin, from: from, until: until}

	deltas := probeWindow(ctx, probes, from, until)
	workers := make([]worker, spec.connections)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() { r.work(k, &workers[k]) })
	}
	wg.Wait()

	m := measurement{elapsed: spec.duration, deltas: deltas()}
	for i := range workers {
		w := &workers[i]
		m.latencies = append(m.latencies, w.latencies...)
		m.errors += w.errors
		if m.firstErr == "" {
			m.firstErr = w.firstErr
		}
	}
	m.requests = len(m.latencies)
	slices.Sort(m.latencies)
	return m
}

// work is connection k's loop. In a closed loop it sends as soon as the
// previous answer is in. At a fixed rate it sends at begin + (k +
// j·connections)/rate: a request that falls due while the connection still
// waits for the previous answer has its latency counted from when it was
// due, so that queueing shows in the percentiles instead of silently
// lowering the rate (no coordinated omission); one sent by an idle
// connection counts from when it was sent, so that the timer's own lateness
// (up to a millisecond in Go) is not taken for the proxy's.
func (r *driver) work(k int, w *worker) {
	w.latencies = make([]time.Duration, 0, 1024)
	rng := rand.New(rand.NewPCG(r.spec.seed, uint64(k)+1))
	if r.spec.rate <= 0 {
		for now := time.Now(); now.Before(r.until) && r.ctx.Err() == nil; now = time.Now() {
			r.send(w, rng, now, now)
		}
		return
	}
	perSecond := func(n float64) time.Duration { return time.Duration(n / r.spec.rate * float64(time.Second)) }
	interval := perSecond(float64(r.spec.connections))
	for due := r.begin.Add(perSecond(float64(k))); due.Before(r.until) && r.ctx.Err() == nil; due = due.Add(interval) {
		start := due
		if time.Now().Before(due) {
			if !sleepUntil(r.ctx, due) {
				return
			}
			start = time.Now()
		}
		r.send(w, rng, due, start)
	}
}

// send makes the scenario's next request and records it in w when it was
// due inside the measured window, its latency counted from start.
func (r *driver) send(w *worker, rng *rand.Rand, due, start time.Time) {
	err := roundTrip(r.ctx, r.client, r.base, r.sc.next(rng))
	if due.Before(r.from) {
		return
	}
	w.latencies = append(w.latencies, time.Since(start))
	if err != nil {
		if w.errors == 0 {
			w.firstErr = err.Error()
		}
		w.errors++
	}
}

// probeWindow reads every probe when the window opens (from) and closes
// (until), in the background; the returned function waits for the second
// reading and gives how much each probe's counters grew (nil when a probe
// could not be read both times, or its counters changed shape).
func probeWindow(ctx context.Context, probes []probe, from, until time.Time) func() [][]float64 {
	before := make([][]float64, len(probes))
	deltas := make([][]float64, len(probes))
	read := func(into [][]float64) {
		for i, p := range probes {
			if v, ok := p(ctx); ok {
				into[i] = v
			}
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !sleepUntil(ctx, from) {
			return
		}
		read(before)
		if !sleepUntil(ctx, until) {
			return
		}
		read(deltas)
		for i := range deltas {
			if len(before[i]) != len(deltas[i]) {
				deltas[i] = nil
				continue
			}
			for j := range deltas[i] {
				deltas[i][j] -= before[i][j]
			}
		}
	}()
	return func() [][]float64 {
		<-done
		return deltas
	}
}

// sleepUntil waits until t, or reports false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errStatus is an answer other than 200.
var errStatus = errors.New("unexpected status")

// roundTrip sends one request and reads the whole answer, so that the
// connection is reused; anything but a 200 is an error.
func roundTrip(ctx context.Context, client *http.Client, base string, r request) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+r.path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w %d on %s", errStatus, resp.StatusCode, r.path)
	}
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	return nil
}

// newClient is the load's HTTP client: one kept-alive connection per worker,
// no timeouts beyond the run's context (a slow answer is a figure, not an
// error) and, unless gzip is asked for, no Accept-Encoding.
func newClient(connections int, gzip bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        connections,
		MaxIdleConnsPerHost: connections,
		MaxConnsPerHost:     connections,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  !gzip,
	}}
}
