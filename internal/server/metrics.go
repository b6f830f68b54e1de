package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The label values of the review metrics: a fixed set, whatever a request
// says, so that no request can add a time series.
const (
	opUnknown = "other"

	resultMalformed = "malformed" // not a review: answered with a 4xx
	resultTooLarge  = "too_large" // over --max-request-bytes: refused
	resultAllowed   = "allowed"
	resultMutated   = "mutated"
	resultDenied    = "denied"
	resultError     = "error"
)

// operation maps a request's operation onto the label values.
func operation(op string) string {
	switch op {
	case "CREATE", "UPDATE", "DELETE", "CONNECT":
		return op
	}
	return opUnknown
}

// result names the outcome of a review for the labels.
func result(r *wireResponseBody, status int) string {
	switch {
	case status != http.StatusOK:
		return resultError
	case len(r.Patch) > 0:
		return resultMutated
	case r.Allowed:
		return resultAllowed
	}
	return resultDenied
}

// reviewMetrics are the metrics of every review. Their labels are the
// webhook, the operation and the result, each from a fixed set: the
// namespace and kind of a request are not labels, since anyone who can
// reach the port chooses them.
type reviewMetrics struct {
	duration *prometheus.HistogramVec
	warnings *prometheus.CounterVec
}

func newReviewMetrics(reg prometheus.Registerer) (*reviewMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &reviewMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pod_identity", Name: "admission_review_duration_seconds",
			Help:    "Time to answer an admission review, by webhook, operation (CREATE, UPDATE, DELETE, CONNECT, other) and result (mutated, allowed, denied, error, malformed).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"webhook", "operation", "result"}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pod_identity", Name: "admission_review_warnings_total",
			Help: "Warnings returned with admission reviews, by webhook.",
		}, []string{"webhook"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.warnings} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("admission review metrics: %w", err)
		}
	}
	return m, nil
}

// webhookMetrics are the review metrics of one webhook; the zero value
// records nothing.
type webhookMetrics struct {
	m       *reviewMetrics
	webhook string
}

func (m *reviewMetrics) forWebhook(id string) webhookMetrics { return webhookMetrics{m, id} }

func (w webhookMetrics) observe(t0 time.Time, op, result string, warnings int) {
	if w.m == nil {
		return
	}
	w.m.duration.WithLabelValues(w.webhook, op, result).Observe(time.Since(t0).Seconds())
	if warnings > 0 {
		w.m.warnings.WithLabelValues(w.webhook).Add(float64(warnings))
	}
}
