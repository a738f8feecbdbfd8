package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/fristed/fristed/server"
)

type serveFlags struct {
	fs            *flag.FlagSet
	store         storeFlags
	listen        string
	tlsCert       string
	tlsKey        string
	insecure      bool
	metricsListen string
	snapshotKeep  time.Duration
}

func newServeFlags() *serveFlags {
	f := &serveFlags{fs: flagSet("serve")}
	f.store.register(f.fs)
	f.fs.StringVar(&f.listen, "listen", "", "`ADDR` to serve the API on, host:port")
	f.fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate `FILE` (PEM); default: a self-signed one made in DIR")
	f.fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key `FILE` (PEM), with --tls-cert")
	f.fs.BoolVar(&f.insecure, "insecure-loopback", false, "serve plain HTTP; only on a loopback address (tests, the demo)")
	f.fs.StringVar(&f.metricsListen, "metrics-listen", "", "loopback `ADDR` to serve Prometheus /metrics on")
	f.fs.DurationVar(&f.snapshotKeep, "snapshot-keep", server.DefaultSnapshotKeep,
		"how long a snapshot countersignature must stand before history is pruned to it (`DURATION`; 0 prunes at once)")
	return f
}

func (f *serveFlags) help(w io.Writer) {
	printHelp(w, f.fs, "--listen ADDR --data DIR [--store sqlite|postgres] [--postgres-url URL] [--tls-cert F --tls-key F | --insecure-loopback] [--metrics-listen ADDR] [--snapshot-keep DURATION]", `
Runs the relay. Without TLS flags it serves HTTPS with a self-signed
certificate made in DIR on first start and prints the certificate's
public-key pin ("tls pin: sha256/..."), which clients pin at first
contact. It also prints the relay's signing key and, last, the address it
listens on. Logs are JSON lines on stderr: method, route, status and
duration of each request, never an address, token or body. SIGINT or
SIGTERM shuts down gracefully, finishing batches in flight.

Keep DIR/kek outside the database's backups: it holds the keys that make
a deleted secret unrecoverable. Several relay processes on one PostgreSQL
database must share DIR (the relay key, the token key and kek/).`)
}

func (f *serveFlags) check() error {
	if f.listen == "" {
		return errors.New("--listen is required")
	}
	if f.snapshotKeep < 0 {
		return errors.New("--snapshot-keep must not be negative")
	}
	if err := f.store.check(); err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if f.insecure && f.tlsCert != "" {
		return errors.New("--insecure-loopback and --tls-cert exclude each other")
	}
	if f.insecure && !server.IsLoopbackHost(f.listen) {
		return fmt.Errorf("--insecure-loopback serves plain HTTP only on a loopback address, not %q", f.listen)
	}
	if f.metricsListen != "" && !server.IsLoopbackHost(f.metricsListen) {
		return fmt.Errorf("--metrics-listen must be a loopback address, not %q", f.metricsListen)
	}
	return nil
}

func runServe(args []string, stdout, stderr io.Writer) error {
	f := newServeFlags()
	if err := parse(f.fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := server.NewLogger(stderr)

	st, err := f.store.open(ctx)
	if err != nil {
		return fmt.Errorf("serve: open store: %w", err)
	}
	defer st.Close()
	relay, err := server.New(ctx, server.Config{Dir: f.store.data, Store: st, Logger: log, SnapshotKeep: f.snapshotKeep})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer relay.Close()

	var cert *tls.Certificate
	var pin string
	if !f.insecure {
		c, p, err := server.LoadTLS(f.store.data, f.tlsCert, f.tlsKey)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		cert, pin = &c, p
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	if f.insecure && !server.IsLoopbackAddr(ln.Addr()) {
		ln.Close()
		return fmt.Errorf("serve: --insecure-loopback: %s is not a loopback address", ln.Addr())
	}
	var mln net.Listener
	if f.metricsListen != "" {
		if mln, err = net.Listen("tcp", f.metricsListen); err != nil {
			ln.Close()
			return fmt.Errorf("serve: metrics listen: %w", err)
		}
		if !server.IsLoopbackAddr(mln.Addr()) {
			ln.Close()
			mln.Close()
			return fmt.Errorf("serve: --metrics-listen: %s is not a loopback address", mln.Addr())
		}
	}

	srv := server.NewHTTPServer(relay.Handler(), cert)
	errc := make(chan error, 2)
	go func() {
		if cert != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	var msrv *http.Server
	if mln != nil {
		msrv = server.NewHTTPServer(relay.MetricsHandler(), nil)
		go func() { errc <- msrv.Serve(mln) }()
	}

	fmt.Fprintf(stdout, "relay key: %s\n", relay.PublicKey())
	scheme := "http"
	if cert != nil {
		scheme = "https"
		fmt.Fprintf(stdout, "tls pin: %s\n", pin)
	}
	if mln != nil {
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", mln.Addr())
	}
	fmt.Fprintf(stdout, "listening on %s://%s\n", scheme, ln.Addr())
	log.Info("relay started", slog.String("store", f.store.kind), slog.Bool("tls", cert != nil))

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info("relay stopping")
	// Long-polls return at once; batches in flight finish.
	relay.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if msrv != nil {
		msrv.Close()
	}
	relay.Close()
	closeErr := st.Close()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	if shutErr != nil {
		return fmt.Errorf("serve: shut down: %w", shutErr)
	}
	if closeErr != nil {
		return fmt.Errorf("serve: close store: %w", closeErr)
	}
	log.Info("relay stopped")
	return nil
}
