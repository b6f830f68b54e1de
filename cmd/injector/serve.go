package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/bombsimon/logrusr/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/certwatch"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

// serveConfig is the configuration of `injector serve`.
type serveConfig struct {
	clusterFlags
	server          server.Config
	certFile        string
	keyFile         string
	certPoll        time.Duration
	clientCAFile    string
	lookupGrace     time.Duration
	lookupQPS       float64
	lookupBurst     int
	maxRequestBytes int64
	gcPercent       int
}

func (c *serveConfig) validate() error {
	if c.certFile == "" || c.keyFile == "" {
		return errors.New("--tls-cert-file and --tls-key-file are required")
	}
	if c.lookupGrace <= 0 {
		return fmt.Errorf("--serviceaccount-lookup-grace %s: expected a positive duration", c.lookupGrace)
	}
	if len(c.server.ClientNames) > 0 && c.clientCAFile == "" {
		return errors.New("--client-names needs --client-ca-file: names are read from verified client certificates")
	}
	if err := c.clusterFlags.validate(); err != nil {
		return err
	}
	return c.server.Validate()
}

func newServeCommand(configs *registry.Configs) *cobra.Command {
	cfg := &serveConfig{clusterFlags: newClusterFlags(configs)}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the admission webhooks: pods are injected (and refused by identity policies); ServiceAccount writes are checked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.server.Address, "listen-address", ":8443", "TLS address of the webhooks ("+server.MutatePath+", "+server.ValidatePath+", "+server.ServiceAccountPath+")")
	addMetricsAddressFlag(fs, &cfg.server.MetricsAddress)
	fs.StringVar(&cfg.certFile, "tls-cert-file", "", "serving certificate (PEM), reloaded when it changes")
	fs.StringVar(&cfg.keyFile, "tls-key-file", "", "serving key (PEM), reloaded when it changes")
	fs.StringVar(&cfg.clientCAFile, "client-ca-file", "", "PEM bundle of CAs: when set, only clients with a certificate they signed (the API server, configured as docs/deploying.md shows) may send reviews; reloaded when it changes")
	fs.StringSliceVar(&cfg.server.ClientNames, "client-names", nil, "with --client-ca-file: the only common names or DNS names a client certificate may carry (the API server's webhook client certificate), so that other certificates the same CA signed are refused")
	fs.DurationVar(&cfg.certPoll, "tls-reload-interval", time.Minute, "how often the certificate files are re-read besides on change events")
	fs.StringVar(&cfg.server.TLSMinVersion, "tls-min-version", "1.2", "minimum TLS version: 1.2 or 1.3")
	fs.StringSliceVar(&cfg.server.TLSCipherSuites, "tls-cipher-suites", nil, "comma-separated TLS 1.2 cipher suite names (default: Go's secure defaults)")
	fs.DurationVar(&cfg.lookupGrace, "serviceaccount-lookup-grace", time.Second, "how long a ServiceAccount missing from the cache is looked up directly")
	fs.Float64Var(&cfg.lookupQPS, "serviceaccount-lookup-qps", 20, "rate of direct ServiceAccount lookups on cache misses")
	fs.IntVar(&cfg.lookupBurst, "serviceaccount-lookup-burst", 40, "burst of direct ServiceAccount lookups on cache misses")
	fs.DurationVar(&cfg.server.ShutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, how long to keep serving while unready before draining")
	fs.DurationVar(&cfg.server.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long in-flight reviews may take to drain")
	fs.Int64Var(&cfg.maxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "largest AdmissionReview accepted")
	fs.IntVar(&cfg.gcPercent, "gc-percent", server.DefaultGCPercent, "garbage collection target percentage; the GOGC environment variable wins when set")
	cfg.clusterFlags.addFlags(fs)
	return cmd
}

func newLogger(format, level string, out io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(out)
	if format == "text" {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	} else {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	lvl, _ := logrus.ParseLevel(level)
	log.SetLevel(lvl)
	// client-go logs through klog: its lines go through the same logger,
	// in the same format, instead of klog's own text between them.
	klog.SetLogger(logrusr.New(log.WithField("source", "client-go")))
	return log
}

func runServe(ctx context.Context, cfg *serveConfig, stderr io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	server.SetGCPercent(cfg.gcPercent)
	rt, err := cfg.clusterFlags.start(ctx, stderr)
	if err != nil {
		return err
	}
	log, engine, client := rt.log, rt.engine, rt.client
	prefixes, keys := engine.CacheKeys()
	sas, err := sacache.New(sacache.Config{
		Client: client, AnnotationPrefixes: prefixes, AnnotationKeys: keys, Log: log,
		LookupGrace: cfg.lookupGrace, LookupQPS: cfg.lookupQPS, LookupBurst: cfg.lookupBurst,
	})
	if err != nil {
		return err
	}
	sas.Start(ctx)
	policies, watcher, err := rt.identityPolicies(cfg.policies, nil)
	if err != nil {
		return err
	}
	if watcher != nil {
		watcher.Start(ctx)
	}

	certs, err := certwatch.New(cfg.certFile, cfg.keyFile, log)
	if err != nil {
		return err
	}
	if err := certs.Watch(ctx, cfg.certPoll); err != nil {
		return err
	}
	if cfg.clientCAFile != "" {
		clientCAs, err := certwatch.NewCAPool(cfg.clientCAFile, log)
		if err != nil {
			return fmt.Errorf("--client-ca-file: %w", err)
		}
		if err := clientCAs.Watch(ctx, cfg.certPoll); err != nil {
			return err
		}
		cfg.server.ClientCAs = clientCAs.Pool
	}
	tlsConfig, err := cfg.server.TLSConfig(certs.GetCertificate)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "pod_identity", Name: "serviceaccount_cache_age_seconds",
			Help: "Seconds since the ServiceAccount cache last heard from the API server (a list, a watch event or a bookmark, which arrive about once a minute on a quiet watch).",
		}, func() float64 { return sas.Age().Seconds() }))
	handler, err := server.NewAdmissionHandler(admission.Config{
		Engine: engine, ServiceAccounts: sas, InvalidIdentity: cfg.invalidIdentity, Log: log, Policies: policies,
	}, reg, cfg.maxRequestBytes)
	if err != nil {
		return err
	}
	ready := func() error {
		if !certs.Loaded() {
			return errors.New("no tls certificate loaded")
		}
		return cachesSynced(sas, watcher)
	}
	v := currentVersion()
	log.WithFields(logrus.Fields{"version": v.Version, "commit": v.Commit, "providers": engine.ProviderNames(), "invalid_identity": cfg.invalidIdentity, "identity_policies": cfg.policies}).Info("starting")
	go func() {
		if sas.WaitForSync(ctx) {
			// The initial list held every ServiceAccount in full before the
			// cache trimmed them: hand that memory back to the OS now rather
			// than whenever the scavenger gets to it.
			debug.FreeOSMemory()
			log.WithField("serviceaccounts", sas.Len()).Info("serviceaccount cache synced")
		}
	}()
	return server.New(cfg.server, tlsConfig, handler, reg, ready, log).Run(ctx)
}
