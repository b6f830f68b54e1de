package admission

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the injector's own Prometheus metrics, beside kubewebhook's.
type Metrics struct {
	injections *prometheus.CounterVec
	skips      *prometheus.CounterVec
	denials    *prometheus.CounterVec
	invalid    *prometheus.CounterVec
	saLookups  *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Name: "injections_total",
			Help: "Pods a provider injected an identity into.",
		}, []string{"provider"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Name: "skips_total",
			Help: "Pods or containers a provider skipped because of a conflicting volume, mount, variable or annotation.",
		}, []string{"provider"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Name: "denials_total",
			Help: "Pods denied because a provider's identity configuration is invalid.",
		}, []string{"provider"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Name: "invalid_admitted_total",
			Help: "Pods admitted without a provider's identity because its configuration is invalid (--invalid-identity=warn).",
		}, []string{"provider"}),
		saLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Name: "serviceaccount_lookups_total",
			Help: "ServiceAccount lookups by result: cache, api (a cache miss found by a direct GET), not_found, error.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.injections, m.skips, m.denials, m.invalid, m.saLookups} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) count(v *prometheus.CounterVec, labels []string) {
	if m == nil {
		return
	}
	for _, l := range labels {
		v.WithLabelValues(l).Inc()
	}
}
