// Package sacache keeps the cluster's ServiceAccounts in memory for the
// admission path: a cluster-wide informer whose objects are trimmed to what
// the providers read (name, namespace, uid and their annotations), and a
// bounded, rate-limited direct GET for the ServiceAccount that was created a
// moment before its pod and is not in the cache yet.
//
// What a request names cannot grow what the cache keeps or spend what real
// pods need: concurrent lookups of one missing ServiceAccount share one GET,
// a ServiceAccount found missing is remembered for a moment (in a bounded
// set, forgotten as soon as the informer sees it created), and no namespace
// may spend more than a share of the direct-lookup budget.
package sacache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/pod-identity/injector/pkg/providers"
)

// Source says where a lookup found its answer.
type Source string

// The answers of Get.
const (
	// FromCache: the informer had it.
	FromCache Source = "cache"
	// FromAPI: the informer missed it and the direct GET found it.
	FromAPI Source = "api"
	// NotFound: neither has it (or the direct GET found it missing a moment ago).
	NotFound Source = "not_found"
	// Failed: the direct GET failed, timed out or was rate limited.
	Failed Source = "error"
)

// Defaults of Config.
const (
	DefaultLookupGrace = time.Second
	DefaultLookupQPS   = 20
	DefaultLookupBurst = 40
	// DefaultMissingTTL is how long a ServiceAccount found missing is
	// answered as missing without another GET (unless the informer sees it
	// created first).
	DefaultMissingTTL = 5 * time.Second
	// DefaultMaxMissing bounds the ServiceAccounts remembered as missing.
	DefaultMaxMissing = 10000
	// DefaultReconnectAfter is how long the watch may stay broken before
	// the cache checks whether the API server is back and, if it is,
	// relists at once instead of waiting out client-go's backoff (up to a
	// minute).
	DefaultReconnectAfter = 3 * time.Second
)

// namespaceShare is the part of the direct-lookup budget (burst and rate)
// that one namespace may spend; namespaces the cache does not know share
// one such part.
const namespaceShare = 4

// Config configures a Cache.
type Config struct {
	// Client reads ServiceAccounts.
	Client kubernetes.Interface
	// AnnotationPrefixes and AnnotationKeys are the annotations (and
	// labels) kept in the cache: those under a prefix and those named; all
	// others are dropped.
	AnnotationPrefixes []string
	AnnotationKeys     []string
	// LookupGrace bounds the direct GET on a cache miss.
	LookupGrace time.Duration
	// LookupQPS and LookupBurst rate-limit the direct GETs, all namespaces
	// together; one namespace gets a quarter of each.
	LookupQPS   float64
	LookupBurst int
	// MissingTTL and MaxMissing bound the memory of missing ServiceAccounts.
	MissingTTL time.Duration
	MaxMissing int
	// ReconnectAfter is how long a broken watch is left to client-go before
	// the cache relists by itself once the API server answers again.
	ReconnectAfter time.Duration
	// Log, when set, receives the watch breaking and the cache relisting
	// after an outage.
	Log logrus.FieldLogger
	// OnChange, when set, is called with the namespace of every
	// ServiceAccount the cache adds, changes or drops (from the informer's
	// goroutine: it must not block).
	OnChange func(namespace string)
}

func (c *Config) defaults() {
	if c.LookupGrace == 0 {
		c.LookupGrace = DefaultLookupGrace
	}
	if c.LookupQPS == 0 {
		c.LookupQPS = DefaultLookupQPS
	}
	if c.LookupBurst == 0 {
		c.LookupBurst = DefaultLookupBurst
	}
	if c.MissingTTL == 0 {
		c.MissingTTL = DefaultMissingTTL
	}
	if c.MaxMissing == 0 {
		c.MaxMissing = DefaultMaxMissing
	}
	if c.ReconnectAfter == 0 {
		c.ReconnectAfter = DefaultReconnectAfter
	}
}

func (c *Config) validate() error {
	if c.Client == nil {
		return errors.New("serviceaccount cache: a client is required")
	}
	if c.LookupGrace < 0 || c.LookupQPS < 0 || c.LookupBurst < 0 || c.MissingTTL < 0 || c.MaxMissing < 0 || c.ReconnectAfter < 0 {
		return errors.New("serviceaccount cache: lookup grace, QPS, burst, missing TTL and size, and reconnect delay must not be negative")
	}
	return nil
}

// Cache answers ServiceAccount lookups.
type Cache struct {
	cfg Config
	gen atomic.Pointer[generation]
	// synced is set once the first generation has listed everything.
	synced atomic.Bool

	// fresh is when a list or a watch event (bookmarks included) last
	// arrived; broken is when the watch last failed after that, or zero.
	fresh, broken atomic.Int64

	flight  singleflight.Group
	budget  *fairLimiter
	missing *missingSet
}

// generation is one informer; the cache replaces it after an outage.
type generation struct {
	informer cache.SharedIndexInformer
	lister   listersv1.ServiceAccountLister
	stop     context.CancelFunc
}

// New returns a cache; call Start to fill it.
func New(cfg Config) (*Cache, error) {
	// Checked as given: zero is "the default", negative is an error.
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	c := &Cache{
		cfg:     cfg,
		budget:  newFairLimiter(cfg.LookupQPS, cfg.LookupBurst),
		missing: newMissingSet(cfg.MissingTTL, cfg.MaxMissing),
	}
	c.gen.Store(c.newGeneration())
	return c, nil
}

func (c *Cache) newGeneration() *generation {
	sas := c.cfg.Client.CoreV1().ServiceAccounts(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			l, err := sas.List(ctx, opts)
			if err == nil {
				c.markFresh()
			} else {
				c.markBroken(ctx, err)
			}
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := sas.Watch(ctx, opts)
			if err != nil {
				// The reflector retries a refused connection itself,
				// without calling the watch error handler: a broken watch
				// is noticed here.
				c.markBroken(ctx, err)
				return nil, err
			}
			// A watch that was opened proves nothing (client-go answers a
			// dropped connection with an empty watch); its events do.
			return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
				if e.Type != watch.Error {
					c.markFresh()
				}
				return e, true
			}), nil
		},
	}
	// As client-go's own informers do: a client that cannot stream the
	// initial list (the fake one of the tests) is listed, then watched.
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, c.cfg.Client), &corev1.ServiceAccount{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	_ = inf.SetTransform(Trim(c.cfg.AnnotationPrefixes, c.cfg.AnnotationKeys...))
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		c.markBroken(ctx, err)
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if sa, ok := obj.(*corev1.ServiceAccount); ok {
				c.missing.forget(sa.Namespace + "/" + sa.Name)
				c.changed(sa)
			}
		},
		UpdateFunc: func(_, obj any) {
			if sa, ok := obj.(*corev1.ServiceAccount); ok {
				c.changed(sa)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if sa, ok := obj.(*corev1.ServiceAccount); ok {
				c.changed(sa)
			}
		},
	})
	return &generation{informer: inf, lister: listersv1.NewServiceAccountLister(inf.GetIndexer())}
}

func (c *Cache) changed(sa *corev1.ServiceAccount) {
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(sa.Namespace)
	}
}

// List returns the cached ServiceAccounts of a namespace, trimmed.
func (c *Cache) List(namespace string) ([]*corev1.ServiceAccount, error) {
	return c.gen.Load().lister.ServiceAccounts(namespace).List(labels.Everything())
}

// Namespaces returns the namespaces that have a cached ServiceAccount.
func (c *Cache) Namespaces() []string {
	return c.gen.Load().informer.GetIndexer().ListIndexFuncValues(cache.NamespaceIndex)
}

// markBroken records when the API server stopped answering the watch (the
// first failure since it last answered); a generation being stopped is
// not broken.
func (c *Cache) markBroken(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if c.broken.CompareAndSwap(0, time.Now().UnixNano()) && c.cfg.Log != nil {
		c.cfg.Log.WithError(err).Warning("serviceaccount watch broken; answering from the cache")
	}
}

func (c *Cache) markFresh() {
	c.fresh.Store(time.Now().UnixNano())
	c.broken.Store(0)
}

// Start runs the informer until ctx ends, and replaces it with a fresh one
// when its watch stayed broken for ReconnectAfter and the API server
// answers again.
func (c *Cache) Start(ctx context.Context) {
	g := c.gen.Load()
	c.run(ctx, g)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), g.informer.HasSynced) {
			c.synced.Store(true)
		}
	}()
	go c.superviseWatch(ctx)
}

func (c *Cache) run(ctx context.Context, g *generation) {
	gctx, cancel := context.WithCancel(ctx)
	g.stop = cancel
	go g.informer.RunWithContext(gctx)
}

// superviseWatch relists as soon as the API server is back after an
// outage. client-go's reflector retries a broken watch with a backoff
// that grows to 30 s plus jitter, and informer factories cannot change it:
// a ServiceAccount changed during the outage would be answered stale for
// up to a minute after the API server came back.
func (c *Cache) superviseWatch(ctx context.Context) {
	t := time.NewTicker(c.cfg.ReconnectAfter / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		since := c.broken.Load()
		if since == 0 || time.Since(time.Unix(0, since)) < c.cfg.ReconnectAfter {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ReconnectAfter)
		_, err := c.cfg.Client.CoreV1().ServiceAccounts(metav1.NamespaceAll).List(pctx, metav1.ListOptions{Limit: 1})
		cancel()
		if err != nil {
			if c.cfg.Log != nil {
				c.cfg.Log.WithError(err).Debug("serviceaccount cache: the API server is still unreachable")
			}
			continue // still down: keep answering from the cache
		}
		t0 := time.Now()
		next := c.newGeneration()
		c.run(ctx, next)
		// Bounded: a fresh informer whose first lists fail backs off as
		// any reflector does (up to 30 s); a new one next tick starts
		// from a short backoff again.
		sctx, cancel := context.WithTimeout(ctx, 2*c.cfg.ReconnectAfter)
		synced := cache.WaitForCacheSync(sctx.Done(), next.informer.HasSynced)
		cancel()
		if !synced {
			next.stop()
			if ctx.Err() != nil {
				return
			}
			if c.cfg.Log != nil {
				c.cfg.Log.Warning("serviceaccount cache: a fresh list did not complete; trying again")
			}
			continue
		}
		c.gen.Swap(next).stop()
		if c.cfg.Log != nil {
			c.cfg.Log.WithField("took", time.Since(t0).String()).Info("serviceaccount cache relisted after the watch broke")
		}
	}
}

// WaitForSync blocks until the informer has listed every ServiceAccount or ctx ends.
func (c *Cache) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.synced.Load)
}

// HasSynced reports whether the first list has been stored.
func (c *Cache) HasSynced() bool { return c.synced.Load() }

// Len is the number of ServiceAccounts in the cache.
func (c *Cache) Len() int { return len(c.gen.Load().informer.GetStore().ListKeys()) }

// Age is the time since the cache last heard from the API server (a list,
// or a watch event or bookmark, which the API server sends about once a
// minute on a quiet watch).
func (c *Cache) Age() time.Duration {
	f := c.fresh.Load()
	if f == 0 {
		return 0
	}
	return time.Since(time.Unix(0, f))
}

// Get returns the ServiceAccount namespace/name, trimmed as the cache keeps
// it, and where it was found. It returns nil with NotFound or Failed (and
// the error) when there is none to use.
func (c *Cache) Get(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, Source, error) {
	g := c.gen.Load()
	sa, err := g.lister.ServiceAccounts(namespace).Get(name)
	if err == nil {
		return sa, FromCache, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, Failed, fmt.Errorf("serviceaccount %s/%s: %w", namespace, name, err)
	}
	key := namespace + "/" + name
	if c.missing.has(key) {
		return nil, NotFound, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LookupGrace)
	defer cancel()
	known := c.namespaceKnown(g, namespace)
	ch := c.flight.DoChan(key, func() (any, error) {
		// The shared lookup is bounded by the grace, not by the first
		// caller's context: a caller that gives up does not fail the rest.
		lctx, cancel := context.WithTimeout(context.Background(), c.cfg.LookupGrace)
		defer cancel()
		if err := c.budget.wait(lctx, namespace, known); err != nil {
			return nil, fmt.Errorf("not in the cache and direct lookups are rate limited: %w", err)
		}
		full, err := c.cfg.Client.CoreV1().ServiceAccounts(namespace).Get(lctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			c.missing.add(key)
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("not in the cache and the direct lookup failed: %w", err)
		}
		trimmed, _ := Trim(c.cfg.AnnotationPrefixes, c.cfg.AnnotationKeys...)(full)
		return trimmed, nil
	})
	select {
	case <-ctx.Done():
		return nil, Failed, fmt.Errorf("serviceaccount %s/%s: not in the cache and the direct lookup took longer than %s: %w", namespace, name, c.cfg.LookupGrace, ctx.Err())
	case res := <-ch:
		switch {
		case res.Err != nil:
			return nil, Failed, fmt.Errorf("serviceaccount %s/%s: %w", namespace, name, res.Err)
		case res.Val == nil:
			return nil, NotFound, nil
		}
		return res.Val.(*corev1.ServiceAccount), FromAPI, nil
	}
}

// namespaceKnown says whether the cache holds any ServiceAccount of the
// namespace: every namespace gets one ("default") as it is created, so a
// namespace it does not know is new or does not exist.
func (c *Cache) namespaceKnown(g *generation, namespace string) bool {
	keys, err := g.informer.GetIndexer().IndexKeys(cache.NamespaceIndex, namespace)
	return err == nil && len(keys) > 0
}

// Trim returns the informer transform that keeps only the name, namespace,
// uid, resource version, automountServiceAccountToken (identity policies
// read it), and the annotations and labels under the given prefixes or
// named by keys (a provider may tell a label put on the ServiceAccount
// instead of the pod). A value longer than providers.MaxValueBytes is kept cut to one byte over
// that bound: enough for the engine to refuse it as too long, and what one
// ServiceAccount can make the cache hold stays bounded (the API server
// allows 256 KiB of annotations an object).
func Trim(prefixes []string, keys ...string) cache.TransformFunc {
	named := make(map[string]bool, len(keys))
	for _, k := range keys {
		named[k] = true
	}
	wanted := func(k string) bool {
		if named[k] {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return false
	}
	keep := func(in map[string]string) map[string]string {
		var out map[string]string
		for k, v := range in {
			if !wanted(k) {
				continue
			}
			if out == nil {
				out = map[string]string{}
			}
			if len(v) > providers.MaxValueBytes {
				// A copy: a slice would keep the whole value alive.
				v = strings.Clone(v[:providers.MaxValueBytes+1])
			}
			out[k] = v
		}
		return out
	}
	return func(obj any) (any, error) {
		sa, ok := obj.(*corev1.ServiceAccount)
		if !ok {
			return obj, nil
		}
		return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: sa.Name, Namespace: sa.Namespace, UID: sa.UID, ResourceVersion: sa.ResourceVersion,
			CreationTimestamp: sa.CreationTimestamp, // policy mode keeps the oldest when a namespace's parameters are full
			Annotations:       keep(sa.Annotations), Labels: keep(sa.Labels),
		}, AutomountServiceAccountToken: sa.AutomountServiceAccountToken}, nil
	}
}

// fairLimiter is the direct-lookup budget: a limiter for all lookups, and
// one for each namespace holding a share of it, so that lookups naming one
// namespace (as a flood of made-up reviews would) cannot spend what the
// pods of other namespaces need. Namespaces the cache does not know share
// one limiter, so made-up namespaces add no state.
type fairLimiter struct {
	all     *rate.Limiter
	unknown *rate.Limiter
	qps     rate.Limit
	burst   int

	mu   sync.Mutex
	byNS map[string]*rate.Limiter
}

// maxNamespaceLimiters bounds byNS; idle limiters (full again) are dropped
// past it. Only namespaces that exist get one.
const maxNamespaceLimiters = 4096

func newFairLimiter(qps float64, burst int) *fairLimiter {
	share := max(1, burst/namespaceShare)
	return &fairLimiter{
		all:     rate.NewLimiter(rate.Limit(qps), burst),
		unknown: rate.NewLimiter(rate.Limit(qps/namespaceShare), share),
		qps:     rate.Limit(qps / namespaceShare), burst: share,
		byNS: map[string]*rate.Limiter{},
	}
}

func (f *fairLimiter) wait(ctx context.Context, namespace string, known bool) error {
	ns := f.unknown
	if known {
		f.mu.Lock()
		ns = f.byNS[namespace]
		if ns == nil {
			if len(f.byNS) >= maxNamespaceLimiters {
				now := time.Now()
				for k, l := range f.byNS {
					if l.TokensAt(now) >= float64(f.burst) {
						delete(f.byNS, k)
					}
				}
			}
			ns = rate.NewLimiter(f.qps, f.burst)
			if len(f.byNS) < maxNamespaceLimiters {
				f.byNS[namespace] = ns
			}
		}
		f.mu.Unlock()
	}
	if err := ns.Wait(ctx); err != nil {
		return fmt.Errorf("namespace %s spent its share: %w", namespace, err)
	}
	return f.all.Wait(ctx)
}

// missingSet remembers ServiceAccounts found missing, for a while and up
// to a number.
type missingSet struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	until map[string]time.Time
}

func newMissingSet(ttl time.Duration, max int) *missingSet {
	return &missingSet{ttl: ttl, max: max, until: map[string]time.Time{}}
}

func (m *missingSet) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[key]
	if ok && time.Now().After(t) {
		delete(m.until, key)
		return false
	}
	return ok
}

func (m *missingSet) add(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.until) >= m.max {
		now := time.Now()
		for k, t := range m.until {
			if now.After(t) {
				delete(m.until, k)
			}
		}
		if len(m.until) >= m.max {
			return // full of fresh entries: answer the next ones with a GET
		}
	}
	m.until[key] = time.Now().Add(m.ttl)
}

func (m *missingSet) forget(key string) {
	m.mu.Lock()
	delete(m.until, key)
	m.mu.Unlock()
}

// Len is the number of ServiceAccounts remembered as missing.
func (m *missingSet) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}
