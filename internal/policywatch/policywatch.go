// Package policywatch keeps a policy.Store current from the cluster: it
// watches IdentityPolicy objects and the labels of Namespaces, compiles a
// policy once per generation, and reports each policy's Ready condition in
// its status.
package policywatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/pod-identity/injector/pkg/policy"
	v1alpha1 "github.com/pod-identity/injector/pkg/policy/v1alpha1"
)

// ConditionReady is the condition type a policy's status reports.
const ConditionReady = "Ready"

// Config configures a Watcher.
type Config struct {
	// Client watches Namespaces.
	Client kubernetes.Interface
	// Dynamic watches IdentityPolicies and writes their status.
	Dynamic dynamic.Interface
	// Store receives the policies and namespace labels.
	Store *policy.Store
	// Log receives status write failures and policy changes.
	Log logrus.FieldLogger
	// Resync is how often the informers resync (0: never).
	Resync time.Duration
	// OnChange, when set, is called when what the Store decides may have
	// changed: with a namespace whose labels changed, or with "" when the
	// policies changed (every namespace). It must not block.
	OnChange func(namespace string)
	// CRDPoll is how often a missing IdentityPolicy CRD is looked for
	// again (default 5 s).
	CRDPoll time.Duration
}

// Watcher keeps a Store current.
type Watcher struct {
	cfg        Config
	namespaces cache.SharedIndexInformer
	policies   cache.SharedIndexInformer
	queue      workqueue.TypedRateLimitingInterface[string]

	mu       sync.Mutex
	compiled map[string]*compiledPolicy
}

// compiledPolicy is a policy compiled at one generation.
type compiledPolicy struct {
	generation int64
	policy     *policy.Policy
}

// New returns a Watcher; call Start to run it.
func New(cfg Config) (*Watcher, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Store == nil {
		return nil, errors.New("policywatch: a client, a dynamic client and a store are required")
	}
	if cfg.CRDPoll <= 0 {
		cfg.CRDPoll = 5 * time.Second
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		cfg.Log = l
	}
	w := &Watcher{cfg: cfg, compiled: map[string]*compiledPolicy{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "identitypolicy-status"})}

	nsFactory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync,
		informers.WithTransform(func(obj any) (any, error) {
			// Only the name and labels are kept.
			if ns, ok := obj.(*corev1.Namespace); ok {
				return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels, ResourceVersion: ns.ResourceVersion}}, nil
			}
			return obj, nil
		}))
	w.namespaces = nsFactory.Core().V1().Namespaces().Informer()
	_, _ = w.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.namespaceChanged(obj) },
		UpdateFunc: func(_, obj any) { w.namespaceChanged(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if ns, ok := obj.(*corev1.Namespace); ok {
				cfg.Store.DeleteNamespace(ns.Name)
			}
		},
	})

	pf := dynamicinformer.NewDynamicSharedInformerFactory(cfg.Dynamic, cfg.Resync)
	w.policies = pf.ForResource(v1alpha1.GroupVersionResource).Informer()
	_, _ = w.policies.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.policiesChanged() },
		UpdateFunc: func(any, any) { w.policiesChanged() },
		DeleteFunc: func(any) { w.policiesChanged() },
	})
	return w, nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func (w *Watcher) namespaceChanged(obj any) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		w.cfg.Store.SetNamespace(ns.Name, ns.Labels)
		if w.cfg.OnChange != nil {
			w.cfg.OnChange(ns.Name)
		}
	}
}

// policiesChanged rebuilds the Store's policies from the informer,
// compiling only the policies whose generation changed, and queues a
// status write for each policy whose Ready condition is out of date.
func (w *Watcher) policiesChanged() {
	w.mu.Lock()
	defer w.mu.Unlock()
	objs := w.policies.GetStore().List()
	seen := make(map[string]bool, len(objs))
	changed := false
	out := make([]*policy.Policy, 0, len(objs))
	for _, obj := range objs {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		name, gen := u.GetName(), u.GetGeneration()
		seen[name] = true
		c := w.compiled[name]
		if c == nil || c.generation != gen {
			changed = true
			c = &compiledPolicy{generation: gen, policy: compile(u)}
			w.compiled[name] = c
			ready, reason, _ := c.policy.Ready()
			w.cfg.Log.WithFields(logrus.Fields{"identitypolicy": name, "generation": gen, "ready": ready, "reason": reason}).Info("identity policy compiled")
		}
		out = append(out, c.policy)
		if statusOutOfDate(u, c.policy) {
			w.queue.Add(name)
		}
	}
	for name := range w.compiled {
		if !seen[name] {
			changed = true
			delete(w.compiled, name)
		}
	}
	w.cfg.Store.SetPolicies(policy.NewCompiledSet(out))
	if changed && w.cfg.OnChange != nil {
		w.cfg.OnChange("")
	}
}

// compile turns an IdentityPolicy read from the cluster into a Policy; one
// that does not even decode is kept, refusing every identity everywhere.
func compile(u *unstructured.Unstructured) *policy.Policy {
	ip := &v1alpha1.IdentityPolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ip); err != nil {
		return policy.Broken(u.GetName(), u.GetGeneration(), fmt.Errorf("the policy cannot be read: %w", err))
	}
	return policy.Compile(ip)
}

// readyCondition is the Ready condition a compiled policy should report.
func readyCondition(p *policy.Policy, generation int64) metav1.Condition {
	ready, reason, message := p.Ready()
	status := metav1.ConditionTrue
	if !ready {
		status = metav1.ConditionFalse
	}
	return metav1.Condition{Type: ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: generation}
}

// statusOutOfDate reports whether u's status differs from what it should say.
func statusOutOfDate(u *unstructured.Unstructured, p *policy.Policy) bool {
	var st v1alpha1.IdentityPolicyStatus
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
		return true
	}
	want := readyCondition(p, u.GetGeneration())
	got := meta.FindStatusCondition(st.Conditions, ConditionReady)
	return st.ObservedGeneration != u.GetGeneration() || got == nil || got.Status != want.Status ||
		got.Reason != want.Reason || got.Message != want.Message || got.ObservedGeneration != want.ObservedGeneration
}

// Start runs the informers and the status writer until ctx ends. The
// policies are watched once the API server serves the IdentityPolicy CRD:
// until then the Watcher is not synced, and says why once.
func (w *Watcher) Start(ctx context.Context) {
	go w.namespaces.RunWithContext(ctx)
	go func() {
		if w.waitForCRD(ctx) {
			w.policies.RunWithContext(ctx)
		}
	}()
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	go func() {
		for w.writeNextStatus(ctx) {
		}
	}()
}

// waitForCRD returns once the API server serves IdentityPolicies (true),
// or when ctx ends (false). A missing CRD is said once, with what installs
// it and the flag that turns policies off; watching a resource the server
// does not serve would only repeat client-go's "could not find the
// requested resource".
func (w *Watcher) waitForCRD(ctx context.Context) bool {
	said := false
	for {
		served, err := w.crdServed(ctx)
		switch {
		case served:
			if said {
				w.cfg.Log.WithField("crd", CRDName).Info("the IdentityPolicy CRD is installed now: identity policies are read")
			}
			return true
		case err != nil:
			w.cfg.Log.WithError(err).Debug("cannot tell whether the IdentityPolicy CRD is installed; asking again")
		case !said:
			w.cfg.Log.WithFields(logrus.Fields{"crd": CRDName, "install": "kubectl apply -k deploy/manifests (or the Helm chart's crds/)", "flag": "--identity-policies=false"}).
				Error("the IdentityPolicy CustomResourceDefinition is not installed: identity policies cannot be read, so the server stays unready; install it, or run with --identity-policies=false to inject without policies")
			said = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(w.cfg.CRDPoll):
		}
	}
}

// CRDName is the IdentityPolicy CustomResourceDefinition's name.
var CRDName = v1alpha1.GroupVersionResource.Resource + "." + v1alpha1.GroupVersionResource.Group

// crdServed asks the API server's discovery whether it serves
// IdentityPolicies; an error other than "not found" means it cannot tell.
func (w *Watcher) crdServed(ctx context.Context) (bool, error) {
	gvr := v1alpha1.GroupVersionResource
	list, err := w.cfg.Client.Discovery().ServerResourcesForGroupVersionWithContext(ctx, gvr.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, r := range list.APIResources {
		if r.Name == gvr.Resource {
			return true, nil
		}
	}
	return false, nil
}

// HasSynced reports whether the policies and namespaces have been listed.
func (w *Watcher) HasSynced() bool {
	return w.namespaces.HasSynced() && w.policies.HasSynced()
}

// WaitForSync waits until HasSynced or ctx ends.
func (w *Watcher) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), w.HasSynced)
}

// writeNextStatus writes the status of the next queued policy.
func (w *Watcher) writeNextStatus(ctx context.Context) bool {
	name, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(name)
	err := w.writeStatus(ctx, name)
	switch {
	case err == nil || apierrors.IsNotFound(err):
		w.queue.Forget(name)
	case apierrors.IsConflict(err):
		// Another replica wrote it, or the policy changed: the informer
		// brings the new version and this is queued again if still needed.
		w.queue.Forget(name)
	default:
		w.cfg.Log.WithError(err).WithField("identitypolicy", name).Warn("could not write the identity policy's status")
		w.queue.AddRateLimited(name)
	}
	return true
}

func (w *Watcher) writeStatus(ctx context.Context, name string) error {
	obj, exists, err := w.policies.GetStore().GetByKey(name)
	if err != nil || !exists {
		return err
	}
	u := obj.(*unstructured.Unstructured).DeepCopy()
	w.mu.Lock()
	c := w.compiled[name]
	w.mu.Unlock()
	if c == nil || c.generation != u.GetGeneration() || !statusOutOfDate(u, c.policy) {
		return nil
	}
	var st v1alpha1.IdentityPolicyStatus
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st)
	st.ObservedGeneration = u.GetGeneration()
	meta.SetStatusCondition(&st.Conditions, readyCondition(c.policy, u.GetGeneration()))
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		return err
	}
	u.Object["status"] = status
	_, err = w.cfg.Dynamic.Resource(v1alpha1.GroupVersionResource).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "pod-identity-injector"})
	return err
}
