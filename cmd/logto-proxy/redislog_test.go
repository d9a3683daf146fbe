package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// go-redis's lines become JSON log records at debug level, and nothing at
// the default level.
func TestRedisLoggerWritesJSONAtDebug(t *testing.T) {
	var debug, info bytes.Buffer
	redisLogger{log: newLogger(&debug, "debug")}.Printf(context.Background(), "redis: %s failed to dial after %d attempts", "127.0.0.1:1", 5)
	redisLogger{log: newLogger(&info, "info")}.Printf(context.Background(), "redis: failed to dial")
	var rec map[string]any
	if err := json.Unmarshal(debug.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q (%v)", debug.String(), err)
	}
	if rec["level"] != "DEBUG" || rec["component"] != "go-redis" || rec["msg"] != "redis: 127.0.0.1:1 failed to dial after 5 attempts" {
		t.Errorf("record %v", rec)
	}
	if info.Len() != 0 {
		t.Errorf("logged at info level: %q", info.String())
	}
}
