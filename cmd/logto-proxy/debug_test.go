package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// The profiler answers on DEBUG_ADDR only: never on the public listener, and
// not at all unless configured.
func TestDebugListener(t *testing.T) {
	front := newLogtoFront(t, logtotest.Options{}, smallBulk)
	redisURL, prefix := testRedisURL(t)

	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	t.Run("configured", func(t *testing.T) {
		a := startReplica(t, faultConfig(t, front, redisURL, prefix, "DEBUG_ADDR", "127.0.0.1:0"))
		if a.debug == nil {
			t.Fatal("DEBUG_ADDR set, no debug listener")
		}
		debugBase := "http://" + a.debug.listener.Addr().String()
		if status, body := get(t, debugBase+"/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Errorf("profiler index on DEBUG_ADDR: %d %.200s", status, body)
		}
		if status, body := get(t, debugBase+"/debug/pprof/goroutine?debug=1"); status != http.StatusOK || !strings.Contains(body, "goroutine profile") {
			t.Errorf("goroutine profile on DEBUG_ADDR: %d %.200s", status, body)
		}
		if status, _ := get(t, "http://"+a.addr()+"/debug/pprof/"); status != http.StatusNotFound {
			t.Errorf("profiler on the public listener: %d, want 404", status)
		}
	})

	t.Run("off by default", func(t *testing.T) {
		a := startReplica(t, faultConfig(t, front, redisURL, prefix))
		if a.debug != nil {
			t.Errorf("no DEBUG_ADDR, yet a debug listener on %s", a.debug.listener.Addr())
		}
	})

	t.Run("bad address", func(t *testing.T) {
		if _, err := loadConfig(nil, envOf(map[string]string{"DEBUG_ADDR": "6060"})); err == nil || !strings.HasPrefix(err.Error(), "DEBUG_ADDR: ") {
			t.Errorf("DEBUG_ADDR=6060: %v, want an error naming DEBUG_ADDR", err)
		}
	})
}
