package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/logto-proxy/logto-proxy/cache"
	"github.com/logto-proxy/logto-proxy/logto"
)

// The webhook receiver: Logto posts its data events here, HMAC-signed, and
// the views follow within a second on every replica.
//
// An event is taken as a hint that something changed, never as the new
// state: Logto sends each one once, asynchronously and in no order, so a
// payload may be older than what is served already, and an organization
// deletion carries no data at all. The receiver only verifies the delivery,
// reads which organizations and users it names, queues them and answers;
// a worker per view re-reads them from Logto and commits what Logto says
// now (a record it no longer has is removed) through the view's Resync,
// under the cluster-wide lock, so that deliveries handled on different
// replicas read and commit in one order. Duplicates, replays and
// out-of-order deliveries are therefore harmless: an event can neither
// resurrect a deleted organization nor roll one back. The generation each
// re-read commits is announced over Redis, so every replica swaps to it.
// A queued re-read lost to a crash, like a webhook Logto never sent, is
// repaired by the periodic reconcile (reconcile.go).

// WebhookPath is where Logto's hook must post: configure the hook's URL as
// this service's base URL followed by it.
const WebhookPath = "/api/webhooks/logto"

// WebhookSignatureHeader carries the lowercase hex HMAC-SHA256 of the raw
// body under the hook's signing key (logto-contract.md §5.3).
const WebhookSignatureHeader = "logto-signature-sha-256"

// Messages of the webhook route.
const (
	msgWebhookAccepted   = "webhook accepted"
	msgWebhookIgnored    = "webhook ignored"
	msgWebhookUnsigned   = "missing webhook signature"
	msgWebhookBadSig     = "invalid webhook signature"
	msgWebhookMalformed  = "invalid webhook payload"
	msgWebhookTooLarge   = "request body too large"
	msgWebhookOverloaded = "too many webhook changes pending"
	msgAPINotFound       = "api not found"
)

// Verdicts, the verdict label of webhook_events_total.
const (
	verdictAccepted   = "accepted"      // verified and queued
	verdictIgnored    = "ignored"       // verified, an event the views do not depend on
	verdictUnsigned   = "unsigned"      // no signature header
	verdictBadSig     = "bad_signature" // a signature that does not verify
	verdictMalformed  = "malformed"     // verified, but not a payload this receiver understands
	verdictTooLarge   = "too_large"     // over the body limit
	verdictOverloaded = "overloaded"    // verified, but the queue is full
	verdictDisabled   = "not_enabled"   // no signing key configured on this replica
)

// eventUnverified labels deliveries refused before their signature was
// checked: an unsigned body is not trusted even for its event name, which
// keeps the metric's labels bounded.
const eventUnverified = "unverified"

// WebhooksConfig configures the webhook receiver. SigningKey, Logto,
// Hierarchy and Metrics are required.
type WebhooksConfig struct {
	// SigningKey is the hook's signing key (LOGTO_WEBHOOK_SIGNING_KEY). It
	// is a secret: it never appears in logs or errors.
	SigningKey string
	// Logto is where named organizations and users are re-read.
	Logto *logto.Client
	// Hierarchy receives organization changes; Users, when set, user and
	// membership changes; Profiles, when set, has the cached session
	// profiles of changed users dropped.
	Hierarchy *cache.HierarchyView
	Users     *cache.UsersView
	Profiles  *Profiles
	// Metrics counts deliveries and re-reads.
	Metrics *Metrics
	// Logger receives the receiver's logs (default slog.Default()).
	Logger *slog.Logger

	// MaxBody is the largest body accepted (default 1 MiB; Logto's
	// payloads are a few KiB, a membership delta at most ~250 KiB).
	MaxBody int64
	// MaxPending bounds the records waiting to be re-read per view
	// (default 100,000); a delivery that would exceed it is refused with
	// 503, and the reconcile repairs what it named.
	MaxPending int
	// BatchSize bounds the records re-read in one commit (default 500),
	// which bounds how long one re-read holds the cluster-wide lock.
	BatchSize int
	// Parallelism bounds the concurrent reads of one batch (default 4).
	Parallelism int
	// Timeout bounds one batch: waiting for the lock, the reads and the
	// commit (default 1m).
	Timeout time.Duration
	// MaxAttempts is how many times a failed re-read is tried before it is
	// dropped (default 5); RetryBackoff the pause after the first failure,
	// doubled after each (default 1s, at most 30s).
	MaxAttempts  int
	RetryBackoff time.Duration
	// Now dates the membership lookups of re-read users (default time.Now).
	Now func() time.Time
}

// LogValue keeps the signing key out of logs.
func (c WebhooksConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("signing_key_set", c.SigningKey != ""), slog.Int64("max_body", c.MaxBody))
}

func (c WebhooksConfig) withDefaults() (WebhooksConfig, error) {
	if c.SigningKey == "" || c.Logto == nil || c.Hierarchy == nil || c.Metrics == nil {
		return c, errors.New("proxy: webhooks: SigningKey, Logto, Hierarchy and Metrics are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	defaultIfUnset(&c.MaxBody, 1<<20)
	defaultIfUnset(&c.MaxPending, 100_000)
	defaultIfUnset(&c.BatchSize, 500)
	defaultIfUnset(&c.Parallelism, 4)
	defaultIfUnset(&c.Timeout, time.Minute)
	defaultIfUnset(&c.MaxAttempts, 5)
	defaultIfUnset(&c.RetryBackoff, time.Second)
	return c, nil
}

// defaultIfUnset sets a non-positive setting to its default.
func defaultIfUnset[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Webhooks receives Logto's webhooks and keeps the views in step with
// them. Start runs its workers; Close stops them. All methods are safe for
// concurrent use.
type Webhooks struct {
	cfg   WebhooksConfig
	key   []byte
	log   *slog.Logger
	orgs  *rereadQueue // organization ids
	users *rereadQueue // user ids, membership changes

	life    sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewWebhooks validates cfg and returns a receiver whose workers are not
// running yet: deliveries are queued until Start.
func NewWebhooks(cfg WebhooksConfig) (*Webhooks, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Webhooks{
		cfg:   cfg,
		key:   []byte(cfg.SigningKey),
		log:   cfg.Logger.With("component", "webhooks"),
		orgs:  newRereadQueue(cfg.MaxPending),
		users: newRereadQueue(cfg.MaxPending),
	}, nil
}

// Start runs one worker per view, until Close. Starting twice is a no-op.
func (w *Webhooks) Start() {
	w.life.Lock()
	defer w.life.Unlock()
	if w.started {
		return
	}
	w.started = true
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Go(func() { w.work(ctx, cache.ViewHierarchy, w.orgs, w.rereadOrgs) })
	w.wg.Go(func() { w.work(ctx, cache.ViewUsers, w.users, w.rereadUsers) })
}

// Close stops the workers and waits for them; re-reads still queued are
// left to the reconcile.
func (w *Webhooks) Close() {
	w.life.Lock()
	cancel := w.cancel
	w.life.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
}

// webhookRoutes registers POST /api/webhooks/logto on the unauthenticated
// /api group: Logto authenticates with the body's signature, not a token.
// The route exists on every replica; one without a signing key answers
// like an unknown route, so that it advertises no receiver.
func (s *Server) webhookRoutes(api *echo.Group) {
	api.POST(strings.TrimPrefix(WebhookPath, "/api"), func(c echo.Context) error { // api is the /api group
		if s.cfg.Webhooks == nil {
			s.cfg.Metrics.ObserveWebhook(eventUnverified, verdictDisabled)
			return fail(c, http.StatusNotFound, msgAPINotFound)
		}
		return s.cfg.Webhooks.receive(c)
	})
}

// receive answers one delivery: 413 over the body limit, 401 unsigned or
// mis-signed, 400 signed but not understood, 503 when too much is pending,
// 200 otherwise (queued, or an event the views do not depend on). Every
// delivery is counted by event and verdict.
func (w *Webhooks) receive(c echo.Context) error {
	req := c.Request()
	refuse := func(event, verdict string, status int, msg string) error {
		w.cfg.Metrics.ObserveWebhook(event, verdict)
		if status == http.StatusUnauthorized {
			// Info, not Warn: anyone can send these; the metric is what to alert on.
			w.log.Info("webhook refused", "verdict", verdict, "remote", c.RealIP())
		}
		return fail(c, status, msg)
	}
	sig := req.Header.Get(WebhookSignatureHeader)
	if sig == "" {
		return refuse(eventUnverified, verdictUnsigned, http.StatusUnauthorized, msgWebhookUnsigned)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, w.cfg.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return refuse(eventUnverified, verdictTooLarge, http.StatusRequestEntityTooLarge, msgWebhookTooLarge)
	case err != nil:
		return refuse(eventUnverified, verdictMalformed, http.StatusBadRequest, msgWebhookMalformed)
	case !w.signed(body, sig):
		return refuse(eventUnverified, verdictBadSig, http.StatusUnauthorized, msgWebhookBadSig)
	}
	ev, err := parseWebhook(body)
	if err != nil {
		w.log.Info("signed webhook not understood", "event", ev.label, "err", err)
		return refuse(ev.label, verdictMalformed, http.StatusBadRequest, msgWebhookMalformed)
	}
	if ev.empty() {
		w.cfg.Metrics.ObserveWebhook(ev.label, verdictIgnored)
		return respond(c, http.StatusOK, msgWebhookIgnored, nil)
	}
	if !w.orgs.add(ev.orgs...) || !w.users.add(ev.userKeys()...) {
		w.log.Warn("webhook refused: too many changes pending; the reconcile will repair it", "event", ev.label)
		return refuse(ev.label, verdictOverloaded, http.StatusServiceUnavailable, msgWebhookOverloaded)
	}
	w.cfg.Metrics.ObserveWebhook(ev.label, verdictAccepted)
	return respond(c, http.StatusOK, msgWebhookAccepted, nil)
}

// signed reports whether sig is the hex HMAC-SHA256 of body under the
// signing key, comparing in constant time.
func (w *Webhooks) signed(body []byte, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, w.key)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), got)
}

// The events the views follow (logto-contract.md §5.1). Sign-in, sign-up
// and password reset (interaction hooks) change a user's lastSignInAt or
// updatedAt, which the user reads serve, so they are followed too when the
// hook is subscribed to them.
const (
	eventOrgCreated        = "Organization.Created"
	eventOrgDeleted        = "Organization.Deleted"
	eventOrgDataUpdated    = "Organization.Data.Updated"
	eventMembershipUpdated = "Organization.Membership.Updated"
	eventUserCreated       = "User.Created"
	eventUserDeleted       = "User.Deleted"
	eventUserDataUpdated   = "User.Data.Updated"
	eventUserSuspension    = "User.SuspensionStatus.Updated"
	eventPostRegister      = "PostRegister"
	eventPostSignIn        = "PostSignIn"
	eventPostResetPassword = "PostResetPassword"
	eventOther             = "other" // any other event, as a metric label
)

// WebhookEvents are the events the receiver follows: the events to
// subscribe Logto's hook to. Any other event is answered 200 and ignored.
func WebhookEvents() []string {
	return []string{
		eventOrgCreated, eventOrgDeleted, eventOrgDataUpdated, eventMembershipUpdated,
		eventUserCreated, eventUserDeleted, eventUserDataUpdated, eventUserSuspension,
		eventPostRegister, eventPostSignIn, eventPostResetPassword,
	}
}

// membershipDeltaCap is the most ids Logto puts in one membership delta
// array; a full array may have been truncated.
const membershipDeltaCap = 5000

// webhookPayload is the part of a delivery the receiver reads. Data hooks
// name their subject in params (or data, for a creation); the membership
// event adds organizationId and optional deltas; interaction hooks carry
// userId (logto-contract.md §5.2).
type webhookPayload struct {
	Event          string          `json:"event"`
	Params         map[string]any  `json:"params"`
	Data           json.RawMessage `json:"data"`
	OrganizationID string          `json:"organizationId"`
	AddedUserIDs   []string        `json:"addedUserIds"`
	RemovedUserIDs []string        `json:"removedUserIds"`
	UserID         string          `json:"userId"`
}

// webhookEvent is what a delivery asks to re-read.
type webhookEvent struct {
	label string // the event, or eventOther, for metrics and logs
	orgs  []rereadKey
	// users are re-read; members are users whose memberships changed,
	// re-read only when their home organization depends on memberships;
	// memberships are organizations whose members must be listed, because
	// the event carried no complete delta.
	users, members, memberships []string
}

func (e webhookEvent) empty() bool {
	return len(e.orgs)+len(e.users)+len(e.members)+len(e.memberships) == 0
}

// userKeys is the users queue's share of the event.
func (e webhookEvent) userKeys() []rereadKey {
	keys := make([]rereadKey, 0, len(e.users)+len(e.members)+len(e.memberships))
	for _, id := range e.users {
		keys = append(keys, rereadKey{rereadUser, id})
	}
	for _, id := range e.members {
		keys = append(keys, rereadKey{rereadMember, id})
	}
	for _, id := range e.memberships {
		keys = append(keys, rereadKey{rereadMembership, id})
	}
	return keys
}

// parseWebhook reads what a verified delivery names. An event the views do
// not follow parses to an empty event; one they follow without a valid
// subject is an error. It never panics, whatever the body.
func parseWebhook(body []byte) (webhookEvent, error) {
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return webhookEvent{label: eventOther}, fmt.Errorf("decode: %w", err)
	}
	ev := webhookEvent{label: eventLabel(p.Event)}
	switch p.Event {
	case eventOrgCreated, eventOrgDataUpdated, eventOrgDeleted:
		id, err := p.subject("id")
		if err != nil {
			return ev, err
		}
		ev.orgs = []rereadKey{{rereadOrg, id}}
	case eventUserCreated, eventUserDataUpdated, eventUserSuspension, eventUserDeleted:
		id, err := p.subject("userId")
		if err != nil {
			return ev, err
		}
		ev.users = []string{id}
	case eventPostRegister, eventPostSignIn, eventPostResetPassword:
		if !validID(p.UserID) {
			return ev, errors.New("no valid userId")
		}
		ev.users = []string{p.UserID}
	case eventMembershipUpdated:
		return ev, p.membership(&ev)
	}
	return ev, nil
}

// subject is the id a data event is about: params[param], else data.id
// (a creation's params are empty).
func (p *webhookPayload) subject(param string) (string, error) {
	if id, ok := p.Params[param].(string); ok {
		if !validID(id) {
			return "", fmt.Errorf("invalid params.%s", param)
		}
		return id, nil
	}
	var data struct {
		ID string `json:"id"`
	}
	if len(p.Data) > 0 {
		if err := json.Unmarshal(p.Data, &data); err != nil {
			return "", fmt.Errorf("decode data: %w", err)
		}
	}
	if !validID(data.ID) {
		return "", fmt.Errorf("no valid params.%s or data.id", param)
	}
	return data.ID, nil
}

// membership reads Organization.Membership.Updated in both its forms: with
// deltas (Logto 1.40+), whose users are re-read, or without any (older
// Logto, or a no-op), when the organization's members are listed. A delta
// array at Logto's cap may have been truncated: the members are listed too.
func (p *webhookPayload) membership(ev *webhookEvent) error {
	org := p.OrganizationID
	if org == "" {
		org, _ = p.Params["id"].(string)
	}
	if !validID(org) {
		return errors.New("no valid organizationId")
	}
	for _, ids := range [][]string{p.AddedUserIDs, p.RemovedUserIDs} {
		if len(ids) > membershipDeltaCap {
			return fmt.Errorf("a delta of %d ids, more than Logto sends", len(ids))
		}
		for _, id := range ids {
			if !validID(id) {
				return errors.New("invalid user id in a delta")
			}
		}
		ev.members = append(ev.members, ids...)
	}
	if p.AddedUserIDs == nil && p.RemovedUserIDs == nil ||
		len(p.AddedUserIDs) == membershipDeltaCap || len(p.RemovedUserIDs) == membershipDeltaCap {
		ev.memberships = []string{org}
	}
	return nil
}

// eventLabel bounds the event label to the events this receiver follows.
func eventLabel(event string) string {
	if slices.Contains(WebhookEvents(), event) {
		return event
	}
	return eventOther
}

// maxWebhookIDLength bounds the ids a delivery may name; Logto's are 12 to
// 21 characters.
const maxWebhookIDLength = 128

// validID reports whether s can be a Logto id: ASCII letters, digits, '-'
// and '_', at most maxWebhookIDLength of them.
func validID(s string) bool {
	if s == "" || len(s) > maxWebhookIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
