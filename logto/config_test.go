package logto

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{Endpoint: "http://localhost:3001", AppID: "m2m-app", AppSecret: "s3cr3t-value"}
}

func TestNewAppliesDefaults(t *testing.T) {
	c, err := New(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	got := c.cfg
	if got.Resource != DefaultResource || got.Timeout != DefaultTimeout || got.MaxAttempts != DefaultMaxAttempts ||
		got.MaxInFlight != DefaultMaxInFlight || got.ListParallelism != DefaultListParallelism ||
		got.ListAttempts != DefaultListAttempts || got.Breaker.ConsecutiveFailures != DefaultBreakerFailures ||
		got.Breaker.OpenTimeout != DefaultBreakerOpenTimeout {
		t.Errorf("defaults not applied: %+v", got)
	}
	if cap(c.slots) != DefaultMaxInFlight {
		t.Errorf("semaphore size %d", cap(c.slots))
	}
	states := c.BreakerStates()
	if len(states) != len(Groups()) {
		t.Errorf("breaker states %v", states)
	}
	for g, s := range states {
		if s != BreakerClosed {
			t.Errorf("group %s starts %s", g, s)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]func(*Config){
		"no endpoint":       func(c *Config) { c.Endpoint = "" },
		"relative endpoint": func(c *Config) { c.Endpoint = "localhost:3001" },
		"ftp endpoint":      func(c *Config) { c.Endpoint = "ftp://logto" },
		"endpoint with api": func(c *Config) { c.Endpoint = "http://logto:3001/api/" },
		"credentials":       func(c *Config) { c.Endpoint = "http://u:p@logto:3001" },
		"query":             func(c *Config) { c.Endpoint = "http://logto:3001?x=1" },
		"no app id":         func(c *Config) { c.AppID = " " },
		"no secret":         func(c *Config) { c.AppSecret = "" },
		"relative resource": func(c *Config) { c.Resource = "api" },
		"negative timeout":  func(c *Config) { c.Timeout = -time.Second },
		"negative inflight": func(c *Config) { c.MaxInFlight = -1 },
		"negative breaker":  func(c *Config) { c.Breaker.OpenTimeout = -1 },
	}
	for name, mutate := range cases {
		cfg := validConfig()
		mutate(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %v", name, cfg)
		} else if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error leaks the secret: %v", name, err)
		}
	}
}

func TestNewTrimsEndpoint(t *testing.T) {
	cfg := validConfig()
	cfg.Endpoint = "https://auth.example.com/logto/"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.base.String(); got != "https://auth.example.com/logto" {
		t.Errorf("base %q", got)
	}
}

func TestConfigNeverPrintsSecret(t *testing.T) {
	cfg := validConfig()
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{logged.String(), fmt.Sprint(cfg), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), (&cfg).String()} {
		if strings.Contains(s, cfg.AppSecret) {
			t.Errorf("secret printed: %s", s)
		}
		if !strings.Contains(s, cfg.AppID) {
			t.Errorf("app id missing: %s", s)
		}
	}
}
