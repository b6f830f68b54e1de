package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/pod-identity/injector/internal/parameters"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

// syncConfig is the configuration of `injector sync`.
type syncConfig struct {
	clusterFlags
	metricsAddress string
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	identity       string
	resync         time.Duration
	workers        int
	writtenPolicy  bool
}

func newSyncCommand(configs *registry.Configs) *cobra.Command {
	cfg := &syncConfig{clusterFlags: newClusterFlags(configs)}
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Policy mode: keep each namespace's IdentityParameters, which the admission policies of deploy/policy inject pods from",
		Long: `sync watches ServiceAccounts (and identity policies and namespace labels) and keeps, in every
namespace with identities, one IdentityParameters object named pod-identity: per ServiceAccount, what
its pods get, as the providers decide with the same flags as serve. The MutatingAdmissionPolicy and
ValidatingAdmissionPolicies of deploy/policy read it; no webhook is called. Run two replicas: one
leader writes (client-go leases), the other takes over.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSync(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	addMetricsAddressFlag(fs, &cfg.metricsAddress)
	fs.BoolVar(&cfg.leaderElect, "leader-elect", true, "write only while holding the lease, so that replicas can run side by side")
	fs.StringVar(&cfg.leaseNamespace, "leader-election-namespace", "", "namespace of the lease (default: the pod's namespace from POD_NAMESPACE, else pod-identity-system)")
	fs.StringVar(&cfg.leaseName, "leader-election-name", "pod-identity-sync", "name of the lease")
	fs.StringVar(&cfg.identity, "leader-election-identity", "", "this replica's name in the lease (default: the host name)")
	fs.DurationVar(&cfg.resync, "resync-period", 10*time.Minute, "how often every namespace is checked again besides on changes")
	fs.IntVar(&cfg.workers, "workers", 2, "namespaces written at the same time")
	fs.BoolVar(&cfg.writtenPolicy, "written-policy", false, "alpha: write the mutating policy with the rules of the identities in use, and per namespace the ServiceAccount "+parameters.RecordsName+
		" it reads, then point the binding "+parameters.BindingName+" at it (about 1.3 times as fast as the generic policy; deploy/policy/written, docs/policy-mode.md)")
	cfg.clusterFlags.addFlags(fs)
	return cmd
}

func (c *syncConfig) validate() error {
	if c.workers < 1 {
		return fmt.Errorf("--workers %d: expected at least 1", c.workers)
	}
	return c.clusterFlags.validate()
}

func runSync(ctx context.Context, cfg *syncConfig, stderr io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	rt, err := cfg.clusterFlags.start(ctx, stderr)
	if err != nil {
		return err
	}
	log, engine, client, dyn := rt.log, rt.engine, rt.client, rt.dynamic
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The controller exists before the caches that tell it about changes.
	var ctrl *parameters.Controller
	changed := func(ns string) {
		if ctrl != nil {
			ctrl.Changed(ns)
		}
	}
	prefixes, keys := engine.CacheKeys()
	sas, err := sacache.New(sacache.Config{Client: client, AnnotationPrefixes: prefixes, AnnotationKeys: keys, Log: log, OnChange: changed})
	if err != nil {
		return err
	}
	policies, watcher, err := rt.identityPolicies(cfg.policies, changed)
	if err != nil {
		return err
	}
	ctrl, err = parameters.New(parameters.Config{
		Engine: engine, ServiceAccounts: sas, Policies: policies, Dynamic: dyn, Log: log, Registerer: reg,
		Options: parameters.Options{WarnInvalid: cfg.invalidIdentity == "warn"}, Resync: cfg.resync, Written: cfg.writtenPolicy,
	})
	if err != nil {
		return err
	}
	sas.Start(ctx)
	if watcher != nil {
		watcher.Start(ctx)
	}
	ctrl.Start(ctx)

	ready := func() error {
		if !ctrl.HasSynced() {
			return errors.New("identity parameters not listed yet (is the IdentityParameters CRD of deploy/policy installed?)")
		}
		return cachesSynced(sas, watcher)
	}
	run := func(ctx context.Context) {
		log.Info("writing identity parameters")
		ctrl.Run(ctx, cfg.workers)
	}
	elected := make(chan struct{})
	go func() {
		defer close(elected)
		if !cfg.leaderElect {
			run(ctx)
			return
		}
		if err := leaderElect(ctx, cfg, client, run, log); err != nil {
			log.WithError(err).Error("leader election")
		}
	}()
	v := currentVersion()
	log.WithFields(logrus.Fields{"version": v.Version, "commit": v.Commit, "providers": engine.ProviderNames(), "invalid_identity": cfg.invalidIdentity, "identity_policies": cfg.policies, "leader_elect": cfg.leaderElect, "written_policy": cfg.writtenPolicy}).Info("starting sync")
	err = server.RunOps(ctx, cfg.metricsAddress, reg, ready, log)
	// On the way out the leader gives up its lease, so that the other
	// replica takes over at once instead of when the lease expires.
	select {
	case <-elected:
	case <-time.After(5 * time.Second):
		log.Warning("the lease was not released within 5s; the other replica takes over when it expires")
	}
	return err
}

// leaderElect runs run while this replica holds the lease, until ctx ends.
// A replica that loses the lease stops writing and campaigns again.
func leaderElect(ctx context.Context, cfg *syncConfig, client kubernetes.Interface, run func(context.Context), log logrus.FieldLogger) error {
	ns := cfg.leaseNamespace
	if ns == "" {
		if ns = os.Getenv("POD_NAMESPACE"); ns == "" {
			ns = "pod-identity-system"
		}
	}
	id := cfg.identity
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return err
		}
		id = host
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: cfg.leaseName},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock: lock, ReleaseOnCancel: true,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: run,
				OnStoppedLeading: func() { log.WithField("identity", id).Info("not the leader") },
				OnNewLeader:      func(l string) { log.WithField("leader", l).Info("leader") },
			},
		})
	}
	return nil
}
