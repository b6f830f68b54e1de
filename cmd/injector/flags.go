package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pod-identity/injector/pkg/policy/v1alpha1"

	"github.com/pod-identity/injector/internal/policywatch"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

func addInvalidIdentityFlag(fs *pflag.FlagSet, v *string) {
	addChoiceFlag(fs, v, "invalid-identity", "deny", "what an invalid identity annotation does: deny the pod, or warn and admit it without that provider's injection", "deny", "warn")
}

// buildEngine builds the enabled providers of set, logging to stderr,
// into the engine; what they watch lives as long as ctx.
func buildEngine(ctx context.Context, set *registry.Set, stderr io.Writer) (*mutate.Engine, error) {
	log := logrus.New()
	log.SetOutput(stderr)
	ps, err := set.Build(ctx, log)
	if err != nil {
		return nil, err
	}
	return mutate.New(ps).WithAPIAudiences(set.APIAudiences()), nil
}

// clusterFlags are the settings serve and sync share: the cluster
// connection, logging, the providers and how identities are judged.
type clusterFlags struct {
	kube            *kubeOptions
	kubeQPS         float32
	kubeBurst       int
	logFormat       string
	logLevel        string
	invalidIdentity string
	policies        bool
	providers       *registry.Set
}

func newClusterFlags(configs *registry.Configs) clusterFlags {
	return clusterFlags{providers: builtin.New().WithConfigs(configs), kube: newKubeOptions()}
}

func (c *clusterFlags) addFlags(fs *pflag.FlagSet) {
	c.kube.addFlags(fs)
	fs.Float32Var(&c.kubeQPS, "kube-api-qps", 20, "queries per second to the Kubernetes API")
	fs.IntVar(&c.kubeBurst, "kube-api-burst", 40, "burst of queries to the Kubernetes API")
	addChoiceFlag(fs, &c.logFormat, "log-format", "json", "log format: json or text", "json", "text")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warning or error")
	fs.BoolVar(&c.policies, "identity-policies", true, "enforce the cluster's IdentityPolicy objects (the CRD in deploy/manifests must be installed); false ignores them")
	addInvalidIdentityFlag(fs, &c.invalidIdentity)
	c.providers.AddFlags(fs)
}

func (c *clusterFlags) validate() error {
	if _, err := logrus.ParseLevel(c.logLevel); err != nil {
		return fmt.Errorf("--log-level %q: expected debug, info, warning or error", c.logLevel)
	}
	return nil
}

// clusterRuntime is what serve and sync start from.
type clusterRuntime struct {
	log     *logrus.Logger
	engine  *mutate.Engine
	rest    *rest.Config
	client  kubernetes.Interface
	dynamic dynamic.Interface
}

// identityPolicies returns the store of the cluster's IdentityPolicies and
// its watcher (not started), or nils with --identity-policies=false.
// onChange is policywatch.Config's.
func (rt *clusterRuntime) identityPolicies(on bool, onChange func(namespace string)) (*policy.Store, *policywatch.Watcher, error) {
	if !on {
		return nil, nil, nil
	}
	store := policy.NewStore()
	w, err := policywatch.New(policywatch.Config{Client: rt.client, Dynamic: rt.dynamic, Store: store, Log: rt.log, OnChange: onChange})
	return store, w, err
}

// cachesSynced says which of the caches serve and sync decide from has not
// synced yet, or nil.
func cachesSynced(sas *sacache.Cache, watcher *policywatch.Watcher) error {
	if !sas.HasSynced() {
		return errors.New("serviceaccount cache not synced yet")
	}
	if watcher != nil && !watcher.HasSynced() {
		return errors.New("identity policies and namespaces not synced yet (is the IdentityPolicy CRD installed?)")
	}
	return nil
}

// start builds the logger, the enabled providers' engine and the
// Kubernetes client.
func (c *clusterFlags) start(ctx context.Context, stderr io.Writer) (*clusterRuntime, error) {
	log := newLogger(c.logFormat, c.logLevel, stderr)
	provs, err := c.providers.Build(ctx, log)
	if err != nil {
		return nil, err
	}
	rc, err := c.kube.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	rc.QPS, rc.Burst = c.kubeQPS, c.kubeBurst
	rc.UserAgent = "pod-identity-injector"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	audiences := withAPIServerIssuer(ctx, client, c.providers.APIAudiences(), log)
	return &clusterRuntime{log: log, engine: mutate.New(provs).WithAPIAudiences(audiences), rest: rc, client: client, dynamic: dyn}, nil
}

// issuerTimeout bounds reading the API server's issuer at start.
const issuerTimeout = 5 * time.Second

// withAPIServerIssuer adds the API server's issuer to the audiences of
// Kubernetes API tokens. Without --api-audiences the API server accepts
// tokens for its issuer, which need not be one of
// --kubernetes-api-audiences (a managed cluster's issuer is a URL of its
// own): a pod could otherwise project a token for it that
// apiTokenWithIdentity does not count. Where the issuer cannot be read,
// the audiences stay as they are and the log says so.
func withAPIServerIssuer(ctx context.Context, client kubernetes.Interface, audiences []string, log logrus.FieldLogger) []string {
	ctx, cancel := context.WithTimeout(ctx, issuerTimeout)
	defer cancel()
	issuer, err := apiServerIssuer(ctx, client)
	if err != nil {
		log.WithError(err).Warn("the API server's issuer is not counted as a Kubernetes API audience: name it in --kubernetes-api-audiences if the API server accepts tokens for it")
		return audiences
	}
	for _, a := range audiences {
		if mutate.LooseAudience(a) == mutate.LooseAudience(issuer) {
			return audiences
		}
	}
	if len(audiences) >= registry.MaxAPIAudiences {
		log.WithField("issuer", issuer).Warn("the API server's issuer is not counted as a Kubernetes API audience: --kubernetes-api-audiences already names the most there may be")
		return audiences
	}
	log.WithField("issuer", issuer).Info("the API server's issuer counts as a Kubernetes API audience")
	return append(audiences, issuer)
}

// kubeOptions load the cluster connection as kubectl does: --kubeconfig,
// else $KUBECONFIG, else ~/.kube/config, else the in-cluster config;
// --context picks a context, and the context's namespace is the default.
type kubeOptions struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides clientcmd.ConfigOverrides
}

func newKubeOptions() *kubeOptions {
	return &kubeOptions{loading: clientcmd.NewDefaultClientConfigLoadingRules()}
}

func (k *kubeOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.loading.ExplicitPath, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster config)")
	fs.StringVar(&k.overrides.CurrentContext, "context", "", "kubeconfig context to use (default: the current context)")
}

// clientConfig is the kubeconfig as loaded.
func (k *kubeOptions) clientConfig() clientcmd.ClientConfig {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(k.loading, &k.overrides)
}

// clients returns the REST config and the clients, and the namespace the
// context names (default when none).
func (k *kubeOptions) clients() (*rest.Config, kubernetes.Interface, dynamic.Interface, string, error) {
	cc := k.clientConfig()
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("kubernetes client config: %w", err)
	}
	rc.UserAgent = "pod-identity-injector"
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("kubernetes client config: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, nil, "", err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, nil, nil, "", err
	}
	return rc, client, dyn, ns, nil
}

// livePolicies reads the cluster's IdentityPolicies into a store (empty
// without the CRD). A policy that cannot be decoded is kept as broken, so
// that it refuses every identity under it, as serve does.
func livePolicies(ctx context.Context, dyn dynamic.Interface) (*policy.Store, error) {
	store := policy.NewStore()
	list, err := dyn.Resource(v1alpha1.GroupVersionResource).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return store, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list identitypolicies: %w", err)
	}
	var ps []*policy.Policy
	for _, u := range list.Items {
		ip := &v1alpha1.IdentityPolicy{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ip); err != nil {
			ps = append(ps, policy.Broken(u.GetName(), u.GetGeneration(), err))
			continue
		}
		ps = append(ps, policy.Compile(ip))
	}
	store.SetPolicies(policy.NewCompiledSet(ps))
	return store, nil
}
