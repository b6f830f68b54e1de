package admission

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pod-identity/injector/pkg/policy"
)

// counter names one of the injector's counters.
type counter int

const (
	injections counter = iota
	skips
	denials
	invalidAdmitted
	saLookups
	numCounters
)

// Metrics are the injector's own Prometheus metrics, beside kubewebhook's.
// A nil *Metrics counts nothing.
type Metrics struct {
	vecs [numCounters]*prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	defs := [numCounters]struct{ name, help, label string }{
		injections:      {"injections_total", "Pods a provider injected an identity into.", "provider"},
		skips:           {"skips_total", "Pods or containers a provider skipped because of a conflicting volume, mount, variable or annotation.", "provider"},
		denials:         {"denials_total", "Pods denied because a provider's identity configuration is invalid.", "provider"},
		invalidAdmitted: {"invalid_admitted_total", "Pods admitted without a provider's identity because its configuration is invalid (--invalid-identity=warn).", "provider"},
		saLookups:       {"serviceaccount_lookups_total", "ServiceAccount lookups by result: cache, api (a cache miss found by a direct GET), not_found, error.", "result"},
	}
	m := &Metrics{}
	for i, d := range defs {
		m.vecs[i] = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pod_identity", Name: d.name, Help: d.help}, []string{d.label})
		if err := reg.Register(m.vecs[i]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) count(c counter, labels ...string) {
	if m == nil {
		return
	}
	for _, l := range labels {
		m.vecs[c].WithLabelValues(l).Inc()
	}
}

// decisionsDesc describes the identity policy decisions counter.
var decisionsDesc = prometheus.NewDesc("pod_identity_policy_decisions_total",
	"Identity policy decisions about a provider's identity on a ServiceAccount write or a pod: allow, warn or deny.",
	[]string{"policy", "provider", "decision"}, nil)

// policyCollector reports the decisions the policies of a Store counted.
// Its labels are bounded by the policies and providers that exist, never
// by what a request holds.
type policyCollector struct{ store *policy.Store }

func (c policyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- decisionsDesc }

func (c policyCollector) Collect(ch chan<- prometheus.Metric) {
	c.store.Decisions(func(pol, provider, decision string, n uint64) {
		ch <- prometheus.MustNewConstMetric(decisionsDesc, prometheus.CounterValue, float64(n), pol, provider, decision)
	})
}

// RegisterPolicyMetrics registers pod_identity_policy_decisions_total,
// the decisions of the policies in store, on reg.
func RegisterPolicyMetrics(reg prometheus.Registerer, store *policy.Store) error {
	return reg.Register(policyCollector{store})
}
