package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer serves Go's profiler on DEBUG_ADDR, a listener of its own so
// that profiles (which reveal code paths and can cost CPU) are never
// reachable through the public port. It exists so that an operator, and the
// load generator (cmd/logto-load -cpuprofile), can profile the real binary
// under real load.
type debugServer struct {
	http     *http.Server
	listener net.Listener
}

// startDebug listens on addr and serves /debug/pprof/ in the background.
func startDebug(addr string, log *slog.Logger) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("DEBUG_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{listener: ln, http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		// A CPU profile or trace answers after its ?seconds= (at most a
		// few minutes in practice); WriteTimeout bounds a stuck client.
		WriteTimeout: 10 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug server stopped", "error", err)
		}
	}()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return d, nil
}

// close stops the listener and any profile being taken.
func (d *debugServer) close() error {
	if d == nil {
		return nil
	}
	return d.http.Close()
}
