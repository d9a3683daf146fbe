package main

import (
	"context"
	"fmt"
	"log/slog"
)

// redisLogger routes go-redis's own log lines into the service's JSON log at
// debug level. go-redis prints through a logger of its own, settable only
// package-wide (redis.SetLogger, called once in main): left alone it writes
// plain-text lines such as "failed to dial" for every connection attempt
// while Redis is down, which break JSON log pipelines and say nothing the
// service does not report better (readiness, logto_proxy_redis_up, the
// views' own warnings).
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if !r.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	r.log.DebugContext(ctx, fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
}
