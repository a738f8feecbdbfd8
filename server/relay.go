package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// Limits on what one request may carry.
const (
	maxJSONBody       = 64 << 10
	maxStatementBody  = 64 << 10
	maxAuthBody       = 4 << 10
	maxAuthHeader     = 4 << 10
	maxEnrolmentBody  = 80 << 10
	maxWrappedKeyBody = 1<<20 + 4<<10
	maxKeyBatchBody   = 8 << 20
	maxBatchBody      = 8 << 20
	maxSnapshotBody   = 64<<20 + 64<<10
	// MaxDeltasPerBatch is the relay's cap on deltas in one batch (the
	// format allows more; clients send 100).
	MaxDeltasPerBatch = 500
	maxPullLimit      = 1000
	defaultPullLimit  = 100
	maxPullBytes      = 16 << 20
	maxChainLimit     = 1000
	// MaxWait caps a long-poll.
	MaxWait = 60 * time.Second
)

// Lifetimes.
const (
	DefaultTokenTTL = 15 * time.Minute
	challengeTTL    = 2 * time.Minute
	authSkew        = 5 * time.Minute
	jwtLeeway       = 30 * time.Second
	enrolmentTTL    = 7 * 24 * time.Hour
)

// Config configures a Relay.
type Config struct {
	// Dir is the data directory: the relay's signing key, the token key,
	// the KEK directory (Dir/kek unless KEKDir is set) and, for SQLite,
	// the database.
	Dir    string
	KEKDir string
	Store  store.Store
	Logger *slog.Logger // default: JSON to stderr
	Now    func() time.Time
	// TokenTTL is the lifetime of access tokens (DefaultTokenTTL if zero).
	TokenTTL time.Duration
	// Limits for the rate limiters (DefaultLimits if zero).
	Limits Limits
	// SnapshotKeep is how long a countersignature must stand before the
	// relay prunes a stream to it (see pruneStream); zero prunes at once
	// (tests). fristed-relay serve defaults to DefaultSnapshotKeep.
	SnapshotKeep time.Duration
}

// DefaultSnapshotKeep is the serve command's snapshot keep window: a
// stolen coordinator laptop revoked within it can be undone on every
// stream, its countersignatures included.
const DefaultSnapshotKeep = 30 * 24 * time.Hour

// Relay is the relay's HTTP application. It holds no plaintext: batches,
// snapshots and statements are opaque signed bytes to it, and it decides
// who may do what from each tenant's verified admin chain alone.
type Relay struct {
	st       store.Store
	log      *slog.Logger
	now      func() time.Time
	tokenTTL time.Duration
	keep     time.Duration

	signer   *fcrypto.SigningKey
	tokenKey ed25519.PrivateKey
	issuer   string

	kek         *Keystore
	tenants     *registry
	hub         *hub
	addrLimit   *limiter
	deviceLimit *limiter
	env         *envelopeState
	metrics     *metrics
	echo        *echo.Echo

	stopping  chan struct{}
	stopOnce  sync.Once
	cancelSub context.CancelFunc
}

// New opens the relay's keys in cfg.Dir, loads and verifies every
// tenant's chain, and subscribes to the store's appends.
func New(ctx context.Context, cfg Config) (*Relay, error) {
	if cfg.Store == nil || cfg.Dir == "" {
		return nil, errors.New("new relay: a store and a data directory are required")
	}
	r := &Relay{
		st:       cfg.Store,
		log:      cfg.Logger,
		now:      cfg.Now,
		tokenTTL: cfg.TokenTTL,
		keep:     cfg.SnapshotKeep,
		metrics:  newMetrics(),
		stopping: make(chan struct{}),
	}
	if r.log == nil {
		r.log = NewLogger(io.Discard)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.tokenTTL <= 0 {
		r.tokenTTL = DefaultTokenTTL
	}
	lim := cfg.Limits
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	r.addrLimit = newLimiter(lim.AddrRate, lim.AddrBurst)
	r.deviceLimit = newLimiter(lim.DeviceRate, lim.DeviceBurst)

	var err error
	if r.signer, err = LoadRelayKey(cfg.Dir); err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	if r.tokenKey, err = loadTokenKey(cfg.Dir); err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	r.issuer = "fristed-relay/" + r.signer.Public().String()
	kd := cfg.KEKDir
	if kd == "" {
		kd = filepath.Join(cfg.Dir, kekDir)
	}
	if r.kek, err = OpenKeystore(kd); err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	r.kek.onRotate = func() { r.metrics.rotations.Add(1) }
	if err := r.kek.Finish(ctx, r.st); err != nil {
		return nil, fmt.Errorf("new relay: finish kek rotation: %w", err)
	}
	r.tenants = newRegistry(r.st)
	if err := r.tenants.loadAll(ctx); err != nil {
		return nil, fmt.Errorf("new relay: load chains: %w", err)
	}
	r.hub = newHub()
	subCtx, cancel := context.WithCancel(context.Background())
	r.cancelSub = cancel
	if err := r.st.Subscribe(subCtx, r.hub.notify); err != nil {
		cancel()
		return nil, fmt.Errorf("new relay: subscribe: %w", err)
	}
	r.echo = r.routes()
	return r, nil
}

// PublicKey is the relay's signing key, which tenants register at genesis.
func (r *Relay) PublicKey() fcrypto.PublicKey { return r.signer.Public() }

// Handler serves the API.
func (r *Relay) Handler() http.Handler { return r.echo }

// MetricsHandler serves /metrics in the Prometheus text format. Serve it
// on a loopback listener only.
func (r *Relay) MetricsHandler() http.Handler { return r.metrics }

// Stop makes waiting long-polls return now, before a graceful shutdown.
func (r *Relay) Stop() { r.stopOnce.Do(func() { close(r.stopping) }) }

// Close stops long-polls and the store subscription. It does not close the
// store.
func (r *Relay) Close() error {
	r.Stop()
	r.cancelSub()
	return nil
}

// Keystore returns the relay's KEK keystore.
func (r *Relay) Keystore() *Keystore { return r.kek }

func (r *Relay) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Echo's logger and its IP extraction never run: no middleware logs,
	// and the only use of the peer address is the rate limiter's HMAC.
	e.Logger.SetOutput(io.Discard)
	e.IPExtractor = func(*http.Request) string { return "" }
	e.HTTPErrorHandler = r.handleError
	e.Use(r.observe)

	e.GET("/healthz", r.healthz)
	e.GET("/v1/relay", r.relayInfo)
	e.GET("/v1/orgs/:org", r.lookupOrg, r.byAddr)
	e.POST("/v1/tenants", r.createTenant, r.byAddr)

	const t = "/v1/t/:tenant"
	e.GET(t+"/enrol-info", r.enrolInfo, r.byAddr)
	e.POST(t+"/enrolments", r.postEnrolment, r.byAddr)
	e.POST(t+"/auth/challenge", r.challenge, r.byAddr)
	e.POST(t+"/auth/token", r.token, r.byAddr)
	e.POST(t+"/chain/root", r.postRootStatement, r.byAddr)
	e.POST(t+"/chain/root-read", r.rootReadChain, r.byAddr)

	anyDevice, coord := false, true
	e.GET(t+"/chain", r.authed(anyDevice, r.getChain))
	e.POST(t+"/chain", r.authed(anyDevice, r.postStatement))
	e.GET(t+"/enrolments/:request", r.authed(coord, r.getEnrolment))
	e.DELETE(t+"/enrolments/:request", r.authed(coord, r.deleteEnrolment))
	e.POST(t+"/streams/:stream/batches", r.authed(anyDevice, r.pushBatch))
	e.GET(t+"/streams/:stream/batches", r.authed(anyDevice, r.pullBatches))
	e.GET(t+"/streams/:stream/head", r.authed(anyDevice, r.streamHead))
	e.PUT(t+"/streams/:stream/snapshot", r.authed(anyDevice, r.putSnapshot))
	e.GET(t+"/streams/:stream/snapshot", r.authed(anyDevice, r.getSnapshot))
	e.POST(t+"/heads", r.authed(anyDevice, r.heads))
	e.PUT(t+"/keys", r.authed(coord, r.putKey))
	e.GET(t+"/keys", r.authed(anyDevice, r.getKeys))
	e.DELETE(t+"/keys/:stream/:epoch", r.authed(anyDevice, r.ackKey))
	e.POST(t+"/keys/batch", r.authed(coord, r.putKeys))
	e.POST(t+"/keys/ack", r.authed(anyDevice, r.ackKeys))
	e.GET(t+"/devices/last-seen", r.authed(coord, r.lastSeen))
	r.envelopeRoutes(e, t)
	return e
}

func (r *Relay) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (r *Relay) relayInfo(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"relay_key": r.signer.Public().String(), "version": 1})
}

// readBody reads a request body of at most limit bytes.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > limit {
		return nil, wire(syncproto.CodeTooLarge, fmt.Sprintf("body over %d bytes", limit))
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, wire(syncproto.CodeTooLarge, fmt.Sprintf("body over %d bytes", limit))
	} else if err != nil {
		return nil, wire(syncproto.CodeBadRequest, "could not read the body")
	}
	return b, nil
}

// tenantParam parses the :tenant path parameter.
func tenantParam(c echo.Context) (syncproto.TenantID, error) {
	id, err := syncproto.ParseTenantID(c.Param("tenant"))
	if err != nil {
		return id, wire(syncproto.CodeBadRequest, "malformed tenant id")
	}
	return id, nil
}

func streamParam(c echo.Context) (syncproto.StreamID, error) {
	id, err := syncproto.ParseStreamID(c.Param("stream"))
	if err != nil {
		return id, wire(syncproto.CodeBadRequest, "malformed stream id")
	}
	return id, nil
}

// uintQuery parses an optional unsigned query parameter.
func uintQuery(c echo.Context, name string, def uint64) (uint64, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, wire(syncproto.CodeBadRequest, "malformed "+name)
	}
	return v, nil
}

// tenantError turns a registry failure into a wire error.
func tenantError(err error) error {
	if errors.Is(err, errUnknownTenant) {
		return wire(syncproto.CodeNotFound, "unknown tenant")
	}
	return storeError(err)
}
