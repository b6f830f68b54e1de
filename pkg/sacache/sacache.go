// Package sacache keeps the cluster's ServiceAccounts in memory for the
// admission path: a cluster-wide informer whose objects are trimmed to what
// the providers read (name, namespace, uid and their annotations), and a
// bounded, rate-limited direct GET for the ServiceAccount that was created a
// moment before its pod and is not in the cache yet.
package sacache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Source says where a lookup found its answer.
type Source string

// The answers of Get.
const (
	// FromCache: the informer had it.
	FromCache Source = "cache"
	// FromAPI: the informer missed it and the direct GET found it.
	FromAPI Source = "api"
	// NotFound: neither has it.
	NotFound Source = "not_found"
	// Failed: the direct GET failed, timed out or was rate limited.
	Failed Source = "error"
)

// Config configures a Cache.
type Config struct {
	// Client reads ServiceAccounts.
	Client kubernetes.Interface
	// AnnotationPrefixes are the annotations kept in the cache; all others are dropped.
	AnnotationPrefixes []string
	// LookupGrace bounds the direct GET on a cache miss.
	LookupGrace time.Duration
	// LookupQPS and LookupBurst rate-limit the direct GETs.
	LookupQPS   float64
	LookupBurst int
}

func (c *Config) defaults() {
	if c.LookupGrace == 0 {
		c.LookupGrace = time.Second
	}
	if c.LookupQPS == 0 {
		c.LookupQPS = 20
	}
	if c.LookupBurst == 0 {
		c.LookupBurst = 40
	}
}

func (c *Config) validate() error {
	if c.Client == nil {
		return errors.New("serviceaccount cache: a client is required")
	}
	if c.LookupGrace < 0 || c.LookupQPS < 0 || c.LookupBurst < 0 {
		return errors.New("serviceaccount cache: lookup grace, QPS and burst must not be negative")
	}
	return nil
}

// Cache answers ServiceAccount lookups.
type Cache struct {
	cfg      Config
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	lister   listersv1.ServiceAccountLister
	limiter  *rate.Limiter
}

// New returns a cache; call Start to fill it.
func New(cfg Config) (*Cache, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTransform(Trim(cfg.AnnotationPrefixes)))
	sas := factory.Core().V1().ServiceAccounts()
	c := &Cache{
		cfg:      cfg,
		factory:  factory,
		informer: sas.Informer(),
		lister:   sas.Lister(),
		limiter:  rate.NewLimiter(rate.Limit(cfg.LookupQPS), cfg.LookupBurst),
	}
	return c, nil
}

// Start runs the informer until ctx ends.
func (c *Cache) Start(ctx context.Context) { c.factory.Start(ctx.Done()) }

// WaitForSync blocks until the informer has listed every ServiceAccount or ctx ends.
func (c *Cache) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.informer.HasSynced)
}

// HasSynced reports whether the first list has been stored.
func (c *Cache) HasSynced() bool { return c.informer.HasSynced() }

// Len is the number of ServiceAccounts in the cache.
func (c *Cache) Len() int { return len(c.informer.GetStore().ListKeys()) }

// Get returns the ServiceAccount namespace/name, trimmed as the cache keeps
// it, and where it was found. It returns nil with NotFound or Failed (and
// the error) when there is none to use.
func (c *Cache) Get(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, Source, error) {
	sa, err := c.lister.ServiceAccounts(namespace).Get(name)
	if err == nil {
		return sa, FromCache, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, Failed, fmt.Errorf("serviceaccount %s/%s: %w", namespace, name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LookupGrace)
	defer cancel()
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, Failed, fmt.Errorf("serviceaccount %s/%s: not in the cache and direct lookups are rate limited: %w", namespace, name, err)
	}
	full, err := c.cfg.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, NotFound, nil
	case err != nil:
		return nil, Failed, fmt.Errorf("serviceaccount %s/%s: not in the cache and the direct lookup failed: %w", namespace, name, err)
	}
	trimmed, _ := Trim(c.cfg.AnnotationPrefixes)(full)
	return trimmed.(*corev1.ServiceAccount), FromAPI, nil
}

// Trim returns the informer transform that keeps only the name, namespace,
// uid, resource version and the annotations under the given prefixes.
func Trim(prefixes []string) cache.TransformFunc {
	return func(obj any) (any, error) {
		sa, ok := obj.(*corev1.ServiceAccount)
		if !ok {
			return obj, nil
		}
		out := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: sa.Name, Namespace: sa.Namespace, UID: sa.UID, ResourceVersion: sa.ResourceVersion,
		}}
		for k, v := range sa.Annotations {
			for _, p := range prefixes {
				if strings.HasPrefix(k, p) {
					if out.Annotations == nil {
						out.Annotations = map[string]string{}
					}
					out.Annotations[k] = v
					break
				}
			}
		}
		return out, nil
	}
}
