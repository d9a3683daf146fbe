package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/hierarchy"
	"github.com/logto-proxy/logto-proxy/logto"
	"github.com/logto-proxy/logto-proxy/logto/logtotest"
)

// fuzzSigningKey signs the fuzzer's deliveries that ask to be signed.
const fuzzSigningKey = "fuzz-signing-key-0123456789abcdef"

// fuzzMaxBody is small, so that the fuzzer reaches the body limit.
const fuzzMaxBody = 4096

// FuzzWebhookDelivery posts arbitrary bodies and signatures (sign: signed
// with the hook's key, whatever sig says) to the receiver. Every answer is
// a clean envelope; nothing over the limit, unsigned or mis-signed is ever
// accepted or queued; a signed body is accepted exactly when it parses;
// nothing panics. The seed corpus is in testdata/fuzz/FuzzWebhookDelivery
// and runs with the ordinary tests.
func FuzzWebhookDelivery(f *testing.F) {
	w := newReceiverOnly(f)
	e := echo.New()
	e.POST(WebhookPath, w.receive)
	f.Fuzz(func(t *testing.T, body []byte, sig string, sign bool) {
		if sign {
			sig = logtotest.Sign(fuzzSigningKey, body)
		}
		req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
		if sig != "" {
			req.Header.Set(WebhookSignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		queued := drain(w.orgs) + drain(w.users)

		var env struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Code != rec.Code || env.Message == "" || string(env.Data) != "null" {
			t.Fatalf("%d answered with a body that is not a clean envelope (%v): %s", rec.Code, err, rec.Body)
		}
		verified := sig != "" && strings.EqualFold(sig, logtotest.Sign(fuzzSigningKey, body))
		want := http.StatusOK
		switch _, err := parseWebhook(body); {
		case sig == "":
			want = http.StatusUnauthorized
		case len(body) > fuzzMaxBody:
			want = http.StatusRequestEntityTooLarge
		case !verified:
			want = http.StatusUnauthorized
		case err != nil:
			want = http.StatusBadRequest
		}
		if rec.Code != want {
			t.Fatalf("answered %d %q, want %d (signed %v)", rec.Code, env.Message, want, verified)
		}
		if rec.Code != http.StatusOK && queued > 0 {
			t.Fatalf("a refused delivery queued %d re-reads", queued)
		}
	})
}

// newReceiverOnly is a receiver whose workers never run: the fuzzer and
// the benchmark only exercise the route. Its Logto and Redis are never
// called.
func newReceiverOnly(tb testing.TB) *Webhooks {
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lc, err := logto.New(logto.Config{Endpoint: "http://127.0.0.1:9", AppID: "fuzz", AppSecret: "fuzz", Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:9"})
	tb.Cleanup(func() { _ = rdb.Close() })
	view, err := cache.NewHierarchyView(cache.HierarchyConfig{Client: rdb, Logger: quiet,
		Source: func(ctx context.Context) ([]hierarchy.Record, error) { return nil, nil }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = view.Close() })
	w, err := NewWebhooks(WebhooksConfig{SigningKey: fuzzSigningKey, Logto: lc, Hierarchy: view,
		Metrics: NewMetrics(prometheus.NewRegistry(), time.Now), Logger: quiet, MaxBody: fuzzMaxBody})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// drain empties q and returns how many keys it held.
func drain(q *rereadQueue) int { return len(q.take(1 << 30)) }

// BenchmarkWebhookReceive measures one accepted delivery: reading the body,
// checking its HMAC, parsing it and queueing what it names.
func BenchmarkWebhookReceive(b *testing.B) {
	w := newReceiverOnly(b)
	e := echo.New()
	e.POST(WebhookPath, w.receive)
	body := []byte(`{"event":"Organization.Data.Updated","createdAt":"2026-01-01T00:00:00.000Z","userAgent":"Logto (https://logto.io/)","ip":"127.0.0.1","path":"/organizations/abcdefghij12","method":"PATCH","status":200,"params":{"id":"abcdefghij12"},"matchedRoute":"/organizations/:id","data":{"tenantId":"default","id":"abcdefghij12","name":"Acme","description":null,"customData":{"type":"customer","createdBy":"res000000001","vat":"IT01234567890","address":"Via Roma 1","city":"Pesaro"},"isMfaRequired":false,"color":{},"branding":{},"customCss":null,"createdAt":1795332496481},"hookId":"hook00000001"}`)
	sig := logtotest.Sign(fuzzSigningKey, body)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
		req.Header.Set(WebhookSignatureHeader, sig)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("answered %d", rec.Code)
		}
		drain(w.orgs)
	}
}
