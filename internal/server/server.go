package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/quote"
)

// Config configures the listeners.
type Config struct {
	// Address is the TLS address of the webhooks.
	Address string
	// MetricsAddress is the plain HTTP address of /metrics, /healthz and /readyz.
	MetricsAddress string
	// TLSMinVersion is "1.2" or "1.3".
	TLSMinVersion string
	// TLSCipherSuites are cipher suite names for TLS 1.2; empty means Go's defaults.
	TLSCipherSuites []string
	// ClientCAs, when set, makes a client certificate signed by one of the
	// CAs it returns (at the time of the handshake) required.
	ClientCAs func() *x509.CertPool
	// ClientNames, when set with ClientCAs (without, they are ignored:
	// the command refuses them), are the only names a client
	// certificate may carry (its common name or a DNS name): a CA that
	// signs other clients' certificates too (a cluster's own CA does)
	// does not let them in.
	ClientNames []string
	// ShutdownDelay is how long the server keeps serving while unready after
	// SIGTERM, so that endpoints drop it before it stops accepting.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds the drain of in-flight reviews.
	ShutdownTimeout time.Duration
}

// Defaults fills in the zero fields.
func (c *Config) Defaults() {
	if c.Address == "" {
		c.Address = ":8443"
	}
	if c.MetricsAddress == "" {
		c.MetricsAddress = ":8080"
	}
	if c.TLSMinVersion == "" {
		c.TLSMinVersion = "1.2"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
}

// TLSConfig returns the server TLS settings the flags ask for, with
// certificates from getCert.
func (c *Config) TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*tls.Config, error) {
	tc := &tls.Config{GetCertificate: getCert}
	switch c.TLSMinVersion {
	case "1.2", "":
		tc.MinVersion = tls.VersionTLS12
	case "1.3":
		tc.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("--tls-min-version %q: expected 1.2 or 1.3", c.TLSMinVersion)
	}
	if len(c.TLSCipherSuites) > 0 {
		byName := map[string]uint16{}
		for _, s := range tls.CipherSuites() {
			byName[s.Name] = s.ID
		}
		for _, name := range c.TLSCipherSuites {
			id, ok := byName[strings.TrimSpace(name)]
			if !ok {
				known := slices.Sorted(maps.Keys(byName))
				return nil, fmt.Errorf("--tls-cipher-suites %q: not a secure cipher suite Go knows; expected one of %s", name, strings.Join(known, ", "))
			}
			tc.CipherSuites = append(tc.CipherSuites, id)
		}
	}
	if c.ClientCAs != nil {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		if len(c.ClientNames) > 0 {
			names := slices.Clone(c.ClientNames)
			tc.VerifyConnection = func(cs tls.ConnectionState) error {
				return allowedClient(cs, names)
			}
		}
		base := tc
		// The bundle may change while the server runs: each handshake
		// checks against the current one.
		return &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := base.Clone()
			cfg.ClientCAs = c.ClientCAs()
			return cfg, nil
		}}, nil
	}
	return tc, nil
}

// allowedClient checks that the verified client certificate names one of
// names.
func allowedClient(cs tls.ConnectionState, names []string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	if slices.Contains(names, leaf.Subject.CommonName) {
		return nil
	}
	for _, n := range leaf.DNSNames {
		if slices.Contains(names, n) {
			return nil
		}
	}
	return fmt.Errorf("client certificate %s is not one of --client-names", quote.Value(leaf.Subject.CommonName))
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, err := c.TLSConfig(nil); err != nil {
		return err
	}
	if c.ShutdownDelay < 0 || c.ShutdownTimeout < 0 {
		return errors.New("--shutdown-delay and --shutdown-timeout must not be negative")
	}
	return nil
}

// Server runs the webhook and the metrics listeners.
type Server struct {
	cfg      Config
	tls      *tls.Config
	handler  http.Handler
	gatherer prometheus.Gatherer
	ready    func() error
	log      logrus.FieldLogger
	stopping atomic.Bool
}

// New returns a server. ready reports why the server is not ready yet (nil
// when it is).
func New(cfg Config, tlsConfig *tls.Config, handler http.Handler, gatherer prometheus.Gatherer, ready func() error, log logrus.FieldLogger) *Server {
	cfg.Defaults()
	return &Server{cfg: cfg, tls: tlsConfig, handler: handler, gatherer: gatherer, ready: ready, log: log}
}

// OpsHandler serves /metrics, /healthz and /readyz.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.stopping.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := s.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Run serves until ctx ends, then stops being ready, waits ShutdownDelay,
// drains in-flight reviews and returns.
func (s *Server) Run(ctx context.Context) error {
	webhookLn, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Address, err)
	}
	opsLn, err := net.Listen("tcp", s.cfg.MetricsAddress)
	if err != nil {
		_ = webhookLn.Close()
		return fmt.Errorf("listen %s: %w", s.cfg.MetricsAddress, err)
	}
	return s.Serve(ctx, webhookLn, opsLn)
}

// The connection timeouts: a client that sends its request slowly, or
// keeps a connection open idle, is cut off instead of holding a goroutine
// and its buffers for good. The API server sends a review at once.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 90 * time.Second
)

// httpServers returns the webhook and the ops servers.
func (s *Server) httpServers() (webhook, ops *http.Server) {
	errorLog := stdlog.New(httpErrorWriter{s.log.WithField("source", "net/http")}, "", 0)
	return &http.Server{
			Handler:           s.handler,
			TLSConfig:         s.tls,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          errorLog,
		}, &http.Server{Handler: s.OpsHandler(), ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
			WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, ErrorLog: errorLog}
}

// httpErrorWriter takes net/http's own messages (a TLS handshake a client
// failed, a connection it could not serve) into the structured log, one
// entry each, instead of the standard logger's text lines.
type httpErrorWriter struct{ log logrus.FieldLogger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Serve is Run on listeners the caller opened.
func (s *Server) Serve(ctx context.Context, webhookLn, opsLn net.Listener) error {
	webhookSrv, opsSrv := s.httpServers()
	errs := make(chan error, 2)
	go func() { errs <- webhookSrv.ServeTLS(webhookLn, "", "") }()
	go func() { errs <- opsSrv.Serve(opsLn) }()
	s.log.WithFields(logrus.Fields{"address": webhookLn.Addr().String(), "metrics_address": opsLn.Addr().String()}).Info("serving")

	select {
	case err := <-errs:
		_ = webhookSrv.Close()
		_ = opsSrv.Close()
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	s.log.WithField("delay", s.cfg.ShutdownDelay.String()).Info("shutting down: not ready, draining")
	time.Sleep(s.cfg.ShutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := webhookSrv.Shutdown(sctx)
	_ = opsSrv.Shutdown(sctx)
	if err != nil {
		return fmt.Errorf("drain in-flight reviews: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// RunOps serves only /metrics, /healthz and /readyz on address until ctx
// ends: for `injector sync`, which answers no reviews.
func RunOps(ctx context.Context, address string, gatherer prometheus.Gatherer, ready func() error, log logrus.FieldLogger) error {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("listen %s: %w", address, err)
	}
	s := New(Config{}, nil, nil, gatherer, ready, log)
	_, ops := s.httpServers()
	errs := make(chan error, 1)
	go func() { errs <- ops.Serve(ln) }()
	log.WithField("metrics_address", ln.Addr().String()).Info("serving metrics and health")
	select {
	case err := <-errs:
		return fmt.Errorf("metrics server stopped: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ops.Shutdown(sctx)
}
