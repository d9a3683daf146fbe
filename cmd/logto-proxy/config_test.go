package main

import (
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func validEnv() map[string]string {
	return map[string]string{
		"LOGTO_ENDPOINT":       "https://tenant.logto.app/",
		"LOGTO_M2M_APP_ID":     "m2mapp",
		"LOGTO_M2M_APP_SECRET": "s3cret-value",
		"JWT_SECRET":           strings.Repeat("k", 32),
		"REDIS_URL":            "redis://127.0.0.1:6379/0",
	}
}

func TestLoadConfigDefaultsAndEnv(t *testing.T) {
	c, err := loadConfig(nil, envOf(validEnv()))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if c.LogtoEndpoint != "https://tenant.logto.app" {
		t.Errorf("endpoint trailing slash not trimmed: %q", c.LogtoEndpoint)
	}
	if c.LogtoManagementResource != "https://default.logto.app/api" {
		t.Errorf("management resource default = %q", c.LogtoManagementResource)
	}
	if c.ListenAddr != ":8080" || c.SnapshotSoftTTL != 10*time.Minute || c.SnapshotHardTTL != time.Hour {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.RedisPrefix != "logto-proxy:" {
		t.Errorf("redis prefix default = %q", c.RedisPrefix)
	}
}

func TestLoadConfigFlagOverridesEnv(t *testing.T) {
	c, err := loadConfig([]string{"-listen", "127.0.0.1:9999", "-snapshot-soft-ttl", "5s"}, envOf(validEnv()))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if c.ListenAddr != "127.0.0.1:9999" || c.SnapshotSoftTTL != 5*time.Second {
		t.Errorf("flags did not win: %+v", c)
	}
}

func TestLoadConfigErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		name   string
		set    map[string]string
		unset  string
		expect string
	}{
		{name: "missing endpoint", unset: "LOGTO_ENDPOINT", expect: "LOGTO_ENDPOINT: required"},
		{name: "missing app id", unset: "LOGTO_M2M_APP_ID", expect: "LOGTO_M2M_APP_ID: required"},
		{name: "missing secret", unset: "LOGTO_M2M_APP_SECRET", expect: "LOGTO_M2M_APP_SECRET: required"},
		{name: "missing jwt secret", unset: "JWT_SECRET", expect: "JWT_SECRET: required"},
		{name: "missing redis", unset: "REDIS_URL", expect: "REDIS_URL: required"},
		{name: "bad endpoint", set: map[string]string{"LOGTO_ENDPOINT": "tenant.logto.app"}, expect: "LOGTO_ENDPOINT: must be an absolute http(s) URL"},
		{name: "short jwt secret", set: map[string]string{"JWT_SECRET": "short"}, expect: "JWT_SECRET: must be at least 32 bytes"},
		{name: "bad duration", set: map[string]string{"SNAPSHOT_SOFT_TTL": "soon"}, expect: "SNAPSHOT_SOFT_TTL: must be a positive duration"},
		{name: "negative duration", set: map[string]string{"LOGTO_TIMEOUT": "-1s"}, expect: "LOGTO_TIMEOUT: must be a positive duration"},
		{name: "hard below soft", set: map[string]string{"SNAPSHOT_SOFT_TTL": "10m", "SNAPSHOT_HARD_TTL": "1m"}, expect: "SNAPSHOT_HARD_TTL: must not be shorter"},
		{name: "bad redis url", set: map[string]string{"REDIS_URL": "localhost:6379"}, expect: "REDIS_URL: must be a redis://"},
		{name: "bad redis addrs", set: map[string]string{"REDIS_URL": "", "REDIS_ADDRS": "a:1,b"}, expect: "REDIS_ADDRS: must be a comma-separated list"},
		{name: "both redis", set: map[string]string{"REDIS_ADDRS": "a:1,b:2"}, expect: "REDIS_ADDRS: set either"},
		{name: "bad listen", set: map[string]string{"LISTEN_ADDR": "8080"}, expect: "LISTEN_ADDR: must be host:port"},
		{name: "bad log level", set: map[string]string{"LOG_LEVEL": "loud"}, expect: "LOG_LEVEL: must be"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := validEnv()
			delete(env, tc.unset)
			for k, v := range tc.set {
				env[k] = v
			}
			_, err := loadConfig(nil, envOf(env))
			if err == nil {
				t.Fatalf("expected an error containing %q", tc.expect)
			}
			if !strings.HasPrefix(err.Error(), tc.expect) {
				t.Errorf("error %q does not start with %q", err, tc.expect)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), "s3cret-value") {
				t.Errorf("error leaks the app secret: %q", err)
			}
		})
	}
}

func TestLoadConfigDemoNeedsNothing(t *testing.T) {
	c, err := loadConfig([]string{"-demo"}, envOf(nil))
	if err != nil {
		t.Fatalf("demo config: %v", err)
	}
	if !c.Demo {
		t.Fatal("demo flag not set")
	}
}

func TestLoadConfigRejectsStrayArguments(t *testing.T) {
	if _, err := loadConfig([]string{"-demo", "extra"}, envOf(nil)); err == nil {
		t.Fatal("a stray positional argument was accepted")
	}
}
