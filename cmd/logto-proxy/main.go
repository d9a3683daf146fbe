// Command logto-proxy serves the organization-hierarchy reads of the reseller
// dashboard, and lookups for other services, straight from Logto through
// Redis-cached views. `logto-proxy -demo` runs it with a seeded Logto
// simulator and an embedded Redis, needing nothing but Go.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	// go-redis's logger is package-wide: set once, here, not in run (tests
	// run several replicas in one process). Its level follows LOG_LEVEL
	// (not the -log-level flag, which is parsed later).
	redis.SetLogger(redisLogger{log: newLogger(os.Stderr, os.Getenv("LOG_LEVEL"))})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: the stop signal, arguments, environment
// and output are passed in so tests can drive it. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-healthcheck" || args[0] == "--healthcheck") {
		return healthcheck(getenv, stderr)
	}
	cfg, err := loadConfig(args, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "logto-proxy: "+err.Error())
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)

	var demo *demoEnv
	if cfg.Demo {
		if demo, err = startDemo(ctx, &cfg, getenv, log); err != nil {
			fmt.Fprintln(stderr, "logto-proxy: demo: "+err.Error())
			return 1
		}
		defer demo.close()
	}
	a, err := newApp(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "logto-proxy: "+err.Error())
		return 1
	}
	if err := a.start(ctx); err != nil {
		fmt.Fprintln(stderr, "logto-proxy: "+err.Error())
		return 1
	}
	log.Info("listening", "addr", a.addr(), "demo", cfg.Demo)
	if demo != nil {
		if err := demo.announce(ctx, a, stdout); err != nil {
			fmt.Fprintln(stderr, "logto-proxy: demo: "+err.Error())
			return 1
		}
	}

	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.shutdown(shutdownCtx); err != nil {
		log.Error("shutdown", "error", err)
		return 1
	}
	return 0
}

// newLogger writes JSON lines, the format log pipelines parse without help.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// healthcheck is the container image's HEALTHCHECK: the image has no shell or
// curl, so the binary asks its own /healthz.
func healthcheck(getenv func(string) string, stderr io.Writer) int {
	addr := getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}
