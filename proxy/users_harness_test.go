package proxy

import (
	"context"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
)

// newUsers builds, starts and (unless the harness is cold) loads the users
// view of the harness's replica, wired like cmd/logto-proxy wires it.
func (h *harness) newUsers(t testing.TB, ctx context.Context, rdb redis.UniversalClient, prefix string, metrics *Metrics, log *slog.Logger, opts harnessOptions) UsersConfig {
	t.Helper()
	v, err := cache.NewUsersView(cache.UsersConfig{
		Client: rdb, Prefix: prefix, Source: UserSource(h.logto, UserSourceConfig{Logger: log}),
		Logger: log, Observer: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	h.users = v
	if !opts.Cold {
		snap, err := h.view.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Current(ctx, snap.Tree); err != nil {
			t.Fatal(err)
		}
	}
	return UsersConfig{View: v}
}
