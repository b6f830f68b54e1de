package parameters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
	"github.com/pod-identity/injector/pkg/policy"
)

// ManagedByLabel marks the IdentityParameters objects the controller owns.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// ManagedBy is the value of ManagedByLabel.
const ManagedBy = "pod-identity-injector-sync"

// DefaultMaxObjectBytes bounds an IdentityParameters object's spec: etcd
// refuses objects over 1.5 MiB by default, and server-side apply's managed
// fields come on top of the spec.
const DefaultMaxObjectBytes = 768 << 10

// WriteBytesPerSecond paces the writes of one namespace's object: after
// writing n bytes, the next write of that namespace waits n divided by
// this (8 ms for a namespace with one identity, 0.5 s for one with 5,000).
const WriteBytesPerSecond = 1 << 20

// ClusterWriteBytesPerSecond bounds the writes of all namespaces
// together, so that many namespaces rewritten at their pace cannot grow
// etcd's history faster than this between compactions (every 5 minutes
// by default: at most 1.2 GiB, within etcd's default 2 GiB quota only
// if little else is written; the pace of one namespace is the usual
// bound).
const ClusterWriteBytesPerSecond = 4 << 20

// ServiceAccounts is what the controller reads ServiceAccounts from: the
// trimmed cache that `serve` uses (sacache.Cache).
type ServiceAccounts interface {
	List(namespace string) ([]*corev1.ServiceAccount, error)
	Namespaces() []string
	HasSynced() bool
}

// Config configures a Controller.
type Config struct {
	// Engine decides what each ServiceAccount's pods get.
	Engine *mutate.Engine
	// ServiceAccounts is the cache to read them from.
	ServiceAccounts ServiceAccounts
	// Policies, when set, are the identity policies in force.
	Policies *policy.Store
	// Dynamic reads and writes IdentityParameters.
	Dynamic dynamic.Interface
	// Options are the settings that change the parameters.
	Options Options
	// Written, when set, has sync write the mutating policy itself, with
	// the rules of the identities in use (WrittenPolicy), and each
	// namespace's records (NamespaceRecords) besides its
	// IdentityParameters; once every namespace has them, it points the
	// binding BindingName at that policy.
	Written bool
	// Log receives writes at debug level, failures at error level.
	Log logrus.FieldLogger
	// Registerer, when set, receives the controller's metrics.
	Registerer prometheus.Registerer
	// Resync is how often every namespace is checked again (0: never).
	Resync time.Duration
	// MaxObjectBytes bounds one object's spec (default DefaultMaxObjectBytes).
	MaxObjectBytes int
}

// Controller keeps one IdentityParameters object per namespace with
// identities, and none elsewhere.
type Controller struct {
	cfg    Config
	params cache.SharedIndexInformer
	queue  workqueue.TypedRateLimitingInterface[string]

	mu      gosync.Mutex
	pending map[string]time.Time // namespace -> first change not yet written
	paced   map[string]time.Time // namespace -> when its object may be written again

	// computed holds, by namespace and name, each ServiceAccount's
	// parameters as last computed: a namespace of thousands of them is
	// recomputed on every change to one, and Parameters asks every
	// provider about every case a pod can present.
	cacheMu  gosync.Mutex
	computed map[string]map[string]computedParameters

	writeBudget *rate.Limiter

	// written is the written policy (Config.Written); initial holds the
	// namespaces not yet written since Run started: the binding is
	// pointed at the written policy when none is left.
	written *written
	initial map[string]bool

	lag    prometheus.Histogram
	writes *prometheus.CounterVec
	errs   prometheus.Counter
}

// New returns a Controller; call Start, then Run on the leader.
func New(cfg Config) (*Controller, error) {
	if cfg.Engine == nil || cfg.ServiceAccounts == nil || cfg.Dynamic == nil {
		return nil, errors.New("sync: an engine, a serviceaccount cache and a dynamic client are required")
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = l
	}
	if cfg.MaxObjectBytes == 0 {
		cfg.MaxObjectBytes = DefaultMaxObjectBytes
	}
	c := &Controller{cfg: cfg, pending: map[string]time.Time{}, paced: map[string]time.Time{}, computed: map[string]map[string]computedParameters{},
		writeBudget: rate.NewLimiter(rate.Limit(ClusterWriteBytesPerSecond), 2*DefaultMaxObjectBytes),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "identityparameters"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "pod_identity", Subsystem: "sync", Name: "lag_seconds",
			Help:    "Seconds from a change the controller saw (a ServiceAccount, a namespace's labels, the identity policies) to its namespace's IdentityParameters being written or found current.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Subsystem: "sync", Name: "writes_total",
			Help: "IdentityParameters objects written, by operation (create, update, delete).",
		}, []string{"operation"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pod_identity", Subsystem: "sync", Name: "errors_total",
			Help: "Namespaces whose IdentityParameters could not be computed or written (retried with backoff).",
		}),
	}
	metrics := []prometheus.Collector{c.lag, c.writes, c.errs}
	if cfg.Written {
		w, err := newWritten(cfg.Dynamic, cfg.Log)
		if err != nil {
			return nil, err
		}
		w.budget = c.writeBudget
		w.size, w.sets = writtenMetrics()
		metrics = append(metrics, w.size, w.sets)
		c.written = w
	}
	if cfg.Registerer != nil {
		for _, m := range metrics {
			if err := cfg.Registerer.Register(m); err != nil {
				return nil, err
			}
		}
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Dynamic, 0, metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.LabelSelector = ManagedByLabel + "=" + ManagedBy
	})
	c.params = f.ForResource(v1alpha1.GroupVersionResource).Informer()
	// An object changed or deleted by someone else is put back.
	_, _ = c.params.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { c.enqueueObject(obj) },
		DeleteFunc: func(obj any) { c.enqueueObject(obj) },
	})
	return c, nil
}

func (c *Controller) enqueueObject(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		c.queue.Add(u.GetNamespace())
	}
}

// Changed queues a namespace (all of them for ""), remembering when the
// change was seen for the lag metric. It never blocks.
func (c *Controller) Changed(namespace string) {
	if namespace == "" {
		for _, ns := range c.namespaces() {
			c.Changed(ns)
		}
		return
	}
	c.mu.Lock()
	if _, ok := c.pending[namespace]; !ok {
		c.pending[namespace] = time.Now()
	}
	c.mu.Unlock()
	c.queue.Add(namespace)
}

// namespaces are those with ServiceAccounts or with an object.
func (c *Controller) namespaces() []string {
	seen := map[string]bool{}
	out := c.cfg.ServiceAccounts.Namespaces()
	for _, ns := range out {
		seen[ns] = true
	}
	for _, k := range c.params.GetStore().ListKeys() {
		ns, _, _ := cache.SplitMetaNamespaceKey(k)
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out
}

// Start runs the informer of IdentityParameters objects until ctx ends.
func (c *Controller) Start(ctx context.Context) {
	go c.params.RunWithContext(ctx)
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
}

// HasSynced reports whether the objects have been listed.
func (c *Controller) HasSynced() bool { return c.params.HasSynced() }

// Run writes the objects until ctx ends, with the given number of
// workers; only the leader runs it. Every namespace is checked once at the
// start and then every Resync.
func (c *Controller) Run(ctx context.Context, workers int) {
	if !cache.WaitForCacheSync(ctx.Done(), c.params.HasSynced, c.cfg.ServiceAccounts.HasSynced) {
		return
	}
	if c.written != nil {
		// The written policy holds every namespace's sets before any
		// namespace's records are written. A new leader's first policy
		// keeps the sets in use that the policy in force holds, but not
		// those in their grace (only their keys can be read back): records
		// that still name one refuse their pods as not known until they
		// are written again.
		namespaces := c.namespaces()
		c.mu.Lock()
		c.initial = map[string]bool{}
		for _, ns := range namespaces {
			c.initial[ns] = true
		}
		c.mu.Unlock()
		if err := c.seedWritten(ctx, namespaces); err != nil {
			c.cfg.Log.WithError(err).Error("written policy not applied; retried as namespaces are written")
		}
		c.bindWhenWritten(ctx, "")
	}
	c.Changed("")
	for range workers {
		go func() {
			for c.next(ctx) {
			}
		}()
	}
	if c.cfg.Resync <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(c.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Computed again from scratch: what the providers read
			// besides ServiceAccounts (configuration files they reload)
			// reaches the parameters within a resync period.
			c.cacheMu.Lock()
			c.computed = map[string]map[string]computedParameters{}
			c.cacheMu.Unlock()
			if c.written != nil {
				// Records deleted or edited meanwhile are written again,
				// and sets past their grace leave the policy.
				c.written.mu.Lock()
				c.written.records = map[string]string{}
				c.written.layouts = map[string]recordsLayout{}
				c.written.mu.Unlock()
				if err := c.written.refresh(ctx); err != nil {
					c.cfg.Log.WithError(err).Error("written policy not applied; retried as namespaces are written")
				}
			}
			for _, ns := range c.namespaces() {
				c.queue.Add(ns)
			}
		}
	}
}

func (c *Controller) next(ctx context.Context) bool {
	ns, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(ns)
	if ctx.Err() != nil {
		// No longer the leader: the next one writes it.
		c.queue.Add(ns)
		return false
	}
	c.mu.Lock()
	if wait := time.Until(c.paced[ns]); wait > 0 {
		// Written a moment ago: the changes meanwhile are written
		// together, once the pace allows.
		c.mu.Unlock()
		c.queue.AddAfter(ns, wait)
		return true
	}
	seen, ok := c.pending[ns]
	delete(c.pending, ns)
	c.mu.Unlock()
	if err := c.Sync(ctx, ns); err != nil {
		c.errs.Inc()
		c.cfg.Log.WithError(err).WithField("namespace", ns).Error("identity parameters not written; retrying")
		if ok {
			c.mu.Lock()
			if _, again := c.pending[ns]; !again {
				c.pending[ns] = seen
			}
			c.mu.Unlock()
		}
		c.queue.AddRateLimited(ns)
		// A namespace being deleted admits no new pod, and no object
		// can be written in it: it does not hold up the binding.
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.bindWhenWritten(ctx, ns)
		}
		return true
	}
	c.queue.Forget(ns)
	if ok {
		c.lag.Observe(time.Since(seen).Seconds())
	}
	c.bindWhenWritten(ctx, ns)
	return true
}

// seedWritten gives the written policy the sets of every namespace, and
// applies it.
func (c *Controller) seedWritten(ctx context.Context, namespaces []string) error {
	if err := c.written.begin(ctx); err != nil {
		// Seeded all the same: without the sets held, those most
		// namespaces use come first.
		c.cfg.Log.WithError(err).Error("written policy in force not read back")
	}
	err := c.seedSets(namespaces)
	c.written.mu.Lock()
	defer c.written.mu.Unlock()
	if err == nil {
		err = c.written.apply(ctx)
	}
	// Until a policy of this term is applied, no namespace's records are
	// written from what was seeded alone: they may name a set the policy
	// in force does not hold.
	c.written.stale = err != nil
	return err
}

// seedSets gives the written policy the sets of every namespace.
func (c *Controller) seedSets(namespaces []string) error {
	for _, ns := range namespaces {
		spec, _, err := c.Desired(ns)
		if err != nil {
			return err
		}
		recs, err := NamespaceRecords(spec)
		if err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		c.written.mu.Lock()
		if len(recs.Sets) > 0 {
			c.written.byNS[ns] = recs.Sets
		}
		c.written.mu.Unlock()
	}
	return nil
}

// bindWhenWritten notes that namespace ns was written, and points the
// binding at the written policy once every namespace was.
func (c *Controller) bindWhenWritten(ctx context.Context, ns string) {
	if c.written == nil {
		return
	}
	c.mu.Lock()
	delete(c.initial, ns)
	left := len(c.initial)
	c.mu.Unlock()
	if left > 0 {
		return
	}
	if err := c.written.bind(ctx); err != nil {
		c.errs.Inc()
		c.cfg.Log.WithError(err).Error("binding not pointed at the written policy; retrying with the next namespace written")
	}
}

// Desired returns the spec the namespace's object should have, and the
// ServiceAccounts left out because the object would be too large. Every
// ServiceAccount is listed, so that the admission policies can tell one
// that sync has not seen yet: one whose pods get what a ServiceAccount
// with no annotation gets (the default, with its name in the messages)
// is listed with empty parameters. The others' injections are stored as
// the namespace's templates and their own values.
func (c *Controller) Desired(ns string) (v1alpha1.IdentityParametersSpec, []string, error) {
	var spec v1alpha1.IdentityParametersSpec
	sas, err := c.cfg.ServiceAccounts.List(ns)
	if err != nil || len(sas) == 0 {
		if err == nil {
			c.cacheMu.Lock()
			delete(c.computed, ns)
			c.cacheMu.Unlock()
		}
		return spec, nil, err
	}
	if c.written != nil {
		// The records objects are ServiceAccounts of the namespace too;
		// listed, each write of them would change the records again.
		// Their pods are refused as not known.
		sas = slices.DeleteFunc(slices.Clone(sas), func(sa *corev1.ServiceAccount) bool { return isRecordsObject(sa.Name) })
	}
	sort.Slice(sas, func(i, j int) bool { return sas[i].Name < sas[j].Name })
	var scope policy.Scope
	if c.cfg.Policies != nil {
		scope = c.cfg.Policies.Scope(ns)
	}
	placeholder := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ServiceAccountPlaceholder}}
	def, anyDefault, err := Parameters(c.cfg.Engine, placeholder, scope, c.cfg.Options)
	if err != nil {
		return spec, nil, err
	}
	defJSON, _ := json.Marshal(def)
	size := 0
	if anyDefault {
		spec.Default = &def
		size = len(defJSON)
	}
	var dropped []string
	if !scope.Empty() {
		spec.Enforcement = Enforcement(c.cfg.Engine, scope, ns)
		b, _ := json.Marshal(spec.Enforcement)
		size += len(b)
	}
	// The oldest first, so that ServiceAccounts created in numbers (or with
	// long names) cannot push out those that were there before them:
	// over the bound, the newest are left out and their pods refused.
	params := make([]v1alpha1.ServiceAccountParameters, len(sas))
	refusals := make([][]string, len(sas))
	tps := make([]templated, len(sas))
	c.cacheMu.Lock()
	previous := c.computed[ns]
	c.cacheMu.Unlock()
	current := make(map[string]computedParameters, len(sas))
	for i, sa := range sas {
		if was, ok := previous[sa.Name]; ok && was.uid == sa.UID && was.resourceVersion == sa.ResourceVersion && sa.ResourceVersion != "" &&
			was.scope.Same(scope) && was.defaults == string(defJSON) {
			// Shared with the cache: nothing below changes what a
			// record's slices hold, only which slices it has.
			current[sa.Name] = was
			params[i], refusals[i], tps[i] = was.params, was.refusals, was.templated
			continue
		}
		if params[i], refusals[i], _, err = parameters(c.cfg.Engine, sa, scope, c.cfg.Options); err != nil {
			return spec, nil, err
		}
		if b, _ := json.Marshal(params[i]); string(b) == strings.ReplaceAll(string(defJSON), ServiceAccountPlaceholder, sa.Name) {
			params[i], refusals[i] = v1alpha1.ServiceAccountParameters{}, nil
		}
		tps[i] = templatizeAll(params[i].Injections, ns, sa.Name, sa.Annotations)
		current[sa.Name] = computedParameters{uid: sa.UID, resourceVersion: sa.ResourceVersion, scope: scope, defaults: string(defJSON),
			params: params[i], refusals: refusals[i], templated: tps[i]}
	}
	order := make([]int, len(sas))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return sas[order[a]].CreationTimestamp.Before(&sas[order[b]].CreationTimestamp)
	})
	tpl := newTemplater()
	spec.ServiceAccounts = make(map[string]v1alpha1.ServiceAccountParameters, len(sas))
	for _, i := range order {
		sa, p, denied := sas[i], params[i], refusals[i]
		if len(denied) > 0 && spec.Enforcement != nil {
			// Within the object's bound too: a namespace's own
			// ServiceAccounts must not make its parameters unwritable.
			n := len(sa.Name)
			for _, m := range denied {
				n += len(m)
			}
			if size+n > c.cfg.MaxObjectBytes {
				dropped = append(dropped, sa.Name)
				continue
			}
			size += n
			if spec.Enforcement.ServiceAccountDenied == nil {
				spec.Enforcement.ServiceAccountDenied = map[string][]string{}
			}
			spec.Enforcement.ServiceAccountDenied[sa.Name] = denied
		}
		// Each JSON object member costs its quotes, colon and comma.
		before := len(tpl.templates)
		tpl.add(tps[i], &p)
		n := len(sa.Name) + 4
		b, _ := json.Marshal(p)
		n += len(b)
		for _, t := range tpl.templates[before:] {
			b, _ := json.Marshal(t)
			n += len(b) + 1
		}
		if size+n > c.cfg.MaxObjectBytes {
			tpl.truncate(before)
			dropped = append(dropped, sa.Name)
			continue
		}
		size += n
		spec.ServiceAccounts[sa.Name] = p
	}
	spec.Templates = tpl.templates
	spec.Incomplete = len(dropped) > 0
	c.cacheMu.Lock()
	c.computed[ns] = current
	c.cacheMu.Unlock()
	return spec, dropped, nil
}

// computedParameters is a ServiceAccount's parameters, computed for one
// version of it under one set of policies.
type computedParameters struct {
	uid             types.UID
	resourceVersion string
	scope           policy.Scope
	defaults        string // the namespace's default, which it was compared with
	params          v1alpha1.ServiceAccountParameters
	refusals        []string // of the identity (see parameters)
	templated       templated
}

// enforced is the value of the object's v1alpha1.EnforcedLabel.
func enforced(spec v1alpha1.IdentityParametersSpec) string {
	if spec.Enforcement != nil {
		return "true"
	}
	return "false"
}

// pace holds the namespace's next computation back by d, unless it is
// already held back longer.
func (c *Controller) pace(ns string, d time.Duration) {
	c.mu.Lock()
	if until := time.Now().Add(d); until.After(c.paced[ns]) {
		c.paced[ns] = until
	}
	c.mu.Unlock()
}

// Sync brings the namespace's object up to date: created, updated, or
// deleted when it would hold nothing.
func (c *Controller) Sync(ctx context.Context, ns string) error {
	start := time.Now()
	spec, dropped, err := c.Desired(ns)
	if err != nil {
		return err
	}
	// A namespace gets at most half of a worker's time: after computing
	// it, it waits as long as that took (a namespace of thousands of
	// ServiceAccounts, changed all the time, cannot hold the workers
	// every other namespace needs).
	c.pace(ns, time.Since(start))
	if len(dropped) > 0 {
		c.errs.Inc()
		c.cfg.Log.WithFields(logrus.Fields{"namespace": ns, "serviceaccounts": dropped, "max_bytes": c.cfg.MaxObjectBytes}).
			Error("identity parameters too large: these serviceaccounts' pods are refused in policy mode (use the webhook for this namespace)")
	}
	empty := len(spec.ServiceAccounts) == 0 && spec.Default == nil && spec.Enforcement == nil
	if c.written == nil {
		return c.syncObject(ctx, ns, spec, empty)
	}
	// Written mode: the IdentityParameters first, then the policy, then
	// the records that name its sets. The validating policies read the
	// former, the written policy the latter: a pod the written policy
	// finds listed is checked against parameters at least as new, as far
	// as the order of writes goes.
	var recs Records
	if !empty {
		if recs, err = NamespaceRecords(spec); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		if len(recs.Left) > 0 {
			spec.Incomplete = true
			c.errs.Inc()
			c.cfg.Log.WithFields(logrus.Fields{"namespace": ns, "serviceaccounts": recs.Left}).
				Error("serviceaccounts left out of the written policy's records (a name over 63 characters, more distinct identities than the namespace may have, or records too large): their pods are refused in policy mode (use the webhook for this namespace)")
		}
	}
	if err := c.syncObject(ctx, ns, spec, empty); err != nil {
		return err
	}
	if err := c.written.use(ctx, ns, recs.Sets); err != nil {
		return err
	}
	if empty {
		return c.written.writeRecords(ctx, ns, nil)
	}
	return c.written.writeRecords(ctx, ns, &recs)
}

// syncObject brings the namespace's IdentityParameters to spec: created,
// updated, or deleted when it would hold nothing.
func (c *Controller) syncObject(ctx context.Context, ns string, spec v1alpha1.IdentityParametersSpec, empty bool) error {
	client := c.cfg.Dynamic.Resource(v1alpha1.GroupVersionResource).Namespace(ns)
	obj, exists, err := c.params.GetStore().GetByKey(ns + "/" + v1alpha1.Name)
	if err != nil {
		return err
	}
	if empty {
		if !exists {
			return nil
		}
		c.mu.Lock()
		delete(c.paced, ns)
		c.mu.Unlock()
		err := client.Delete(ctx, v1alpha1.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete identityparameters %s/%s: %w", ns, v1alpha1.Name, err)
		}
		c.writes.WithLabelValues("delete").Inc()
		c.cfg.Log.WithField("namespace", ns).Debug("identity parameters deleted")
		return nil
	}
	want, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&spec)
	if err != nil {
		return err
	}
	if exists && reflect.DeepEqual(obj.(*unstructured.Unstructured).Object["spec"], want) &&
		obj.(*unstructured.Unstructured).GetLabels()[v1alpha1.EnforcedLabel] == enforced(spec) {
		return nil
	}
	// Server-side apply, forced: the controller owns the whole spec, and a
	// write needs no resourceVersion, so a cache that has not seen the
	// previous write yet causes no conflict (and no retry with backoff).
	labels := map[string]any{ManagedByLabel: ManagedBy, v1alpha1.EnforcedLabel: enforced(spec)}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.Kind,
		"metadata": map[string]any{"name": v1alpha1.Name, "namespace": ns, "labels": labels},
		"spec":     want,
	}}
	// All namespaces' writes together stay within the cluster's budget
	// (etcd keeps every version until compaction).
	b, err := json.Marshal(want)
	if err != nil {
		return err
	}
	if err := c.writeBudget.WaitN(ctx, min(len(b), c.writeBudget.Burst())); err != nil {
		return fmt.Errorf("apply identityparameters %s/%s: %w", ns, v1alpha1.Name, err)
	}
	if _, err := client.Apply(ctx, v1alpha1.Name, u, metav1.ApplyOptions{FieldManager: ManagedBy, Force: true}); err != nil {
		return fmt.Errorf("apply identityparameters %s/%s: %w", ns, v1alpha1.Name, err)
	}
	// Each write rewrites the whole object, which etcd keeps in its
	// history until compaction: a namespace's writes are paced at
	// WriteBytesPerSecond, so that toggling one annotation of one of
	// thousands of ServiceAccounts cannot write the object many times a
	// second.
	c.pace(ns, time.Duration(float64(len(b))/WriteBytesPerSecond*float64(time.Second)))
	op := "update"
	if !exists {
		op = "create"
	}
	c.writes.WithLabelValues(op).Inc()
	c.cfg.Log.WithFields(logrus.Fields{"namespace": ns, "serviceaccounts": len(spec.ServiceAccounts), "operation": op}).Debug("identity parameters written")
	return nil
}
