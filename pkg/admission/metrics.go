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
	vecs      [numCounters]*prometheus.CounterVec
	decisionV *prometheus.CounterVec
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
	m.decisionV = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pod_identity", Name: "policy_decisions_total",
		Help: "Identity policy decisions about a provider's identity on a ServiceAccount write or a pod: allow, warn or deny."},
		[]string{"policy", "provider", "decision"})
	if err := reg.Register(m.decisionV); err != nil {
		return nil, err
	}
	return m, nil
}

// decisions counts identity policy decisions. Their labels are bounded by
// the policies and providers that exist, never by what a request holds.
func (m *Metrics) decisions(ds []policy.Decision) {
	if m == nil {
		return
	}
	for _, d := range ds {
		m.decisionV.WithLabelValues(d.Policy, d.Provider, d.Decision).Inc()
	}
}

func (m *Metrics) count(c counter, labels ...string) {
	if m == nil {
		return
	}
	for _, l := range labels {
		m.vecs[c].WithLabelValues(l).Inc()
	}
}
