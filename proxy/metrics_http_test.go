package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestObserveHTTPSeries: the cached series count what WithLabelValues
// would, one series per route, method and status, and made-up methods
// share one "other" series instead of creating new ones.
func TestObserveHTTPSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, time.Now)
	for range 3 {
		m.ObserveHTTP("/api/customers/:id", "GET", 200, time.Millisecond)
	}
	m.ObserveHTTP("/api/customers/:id", "GET", 404, time.Millisecond)
	for _, method := range []string{"FOO", "BAR", "BAZ"} {
		m.ObserveHTTP("unmatched", method, 404, time.Millisecond)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	latencies := map[string]uint64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "logto_proxy_http_requests_total":
				counts[labels["route"]+" "+labels["method"]+" "+labels["status"]] = metric.GetCounter().GetValue()
			case "logto_proxy_http_request_duration_seconds":
				latencies[labels["route"]+" "+labels["method"]] = metric.GetHistogram().GetSampleCount()
			}
		}
	}
	wantCounts := map[string]float64{"/api/customers/:id GET 200": 3, "/api/customers/:id GET 404": 1, "unmatched other 404": 3}
	if len(counts) != len(wantCounts) {
		t.Errorf("request series %v, want %v", counts, wantCounts)
	}
	for k, want := range wantCounts {
		if counts[k] != want {
			t.Errorf("requests %q = %v, want %v", k, counts[k], want)
		}
	}
	if len(latencies) != 2 || latencies["/api/customers/:id GET"] != 4 || latencies["unmatched other"] != 3 {
		t.Errorf("latency series %v, want 4 GETs and 3 others", latencies)
	}
}
