package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs the command in process and returns its ready line.
func start(t *testing.T, args ...string) (ready, func() error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, outW, logs)
		_ = outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no ready line: %v (%v); logs: %s", err, <-done, logs)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	var info ready
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		cancel()
		t.Fatalf("ready line %q is not JSON: %v", line, err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return info, stop, logs
}

func TestReadyLineAndShutdown(t *testing.T) {
	info, stop, logs := start(t, "-addr", "127.0.0.1:0", "-fixture=true", "-distributors", "2",
		"-resellers", "2", "-customers", "3")
	if !strings.HasPrefix(info.Endpoint, "http://127.0.0.1:") || info.Issuer != info.Endpoint+"/oidc" ||
		info.ManagementResource != "https://default.logto.app/api" || info.M2MAppID == "" || info.M2MAppSecret == "" {
		t.Errorf("ready = %+v", info)
	}
	if info.APIResource == "" || info.ServiceAppID == "" || info.ServiceAppSecret == "" || len(info.FixtureOrgs) != 11 {
		t.Errorf("fixture fields missing: %+v", info)
	}
	if want := 11 + 2 + 4 + 12; info.Organizations != want {
		t.Errorf("organizations = %d, want %d", info.Organizations, want)
	}

	form := url.Values{"grant_type": {"client_credentials"}, "resource": {info.ManagementResource}, "scope": {"all"}}
	req, err := http.NewRequest(http.MethodPost, info.Endpoint+"/oidc/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(info.M2MAppID, info.M2MAppSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("token with the printed credentials: %d", res.StatusCode)
	}

	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	if res, err := client.Get(info.Endpoint + "/api/status"); err == nil {
		_ = res.Body.Close()
		t.Errorf("still serving after shutdown")
	}
	text := logs.String()
	if !strings.Contains(text, "logto-sim ready") || strings.Contains(text, info.M2MAppSecret) ||
		strings.Contains(text, info.ServiceAppSecret) {
		t.Errorf("logs must announce readiness and hold no secret: %s", text)
	}
}

func TestPlainStartHasNoFixtureFields(t *testing.T) {
	info, _, _ := start(t, "-addr", "127.0.0.1:0", "-m2m-app-id", "fixedappid00", "-m2m-app-secret", "fixed-secret")
	if info.M2MAppID != "fixedappid00" || info.M2MAppSecret != "fixed-secret" || info.Organizations != 0 ||
		info.APIResource != "" || info.FixtureOrgs != nil {
		t.Errorf("ready = %+v", info)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-latency", "soon"}, {"-distributors", "-1"}, {"extra"}} {
		var stderr bytes.Buffer
		if err := run(context.Background(), args, io.Discard, &stderr); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
