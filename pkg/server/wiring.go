package server

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	kwhprometheus "github.com/slok/kubewebhook/v2/pkg/metrics/prometheus"
	"github.com/slok/kubewebhook/v2/pkg/webhook"

	"github.com/pod-identity/injector/pkg/admission"
)

// NewAdmissionHandler builds the mutating and validating webhooks from cfg,
// measured by kubewebhook's Prometheus recorder and counted by the
// injector's own metrics, both registered on reg, and serves them.
func NewAdmissionHandler(cfg admission.Config, reg prometheus.Registerer, maxRequestBytes int64) (http.Handler, error) {
	rec, err := kwhprometheus.NewRecorder(kwhprometheus.RecorderConfig{Registry: reg})
	if err != nil {
		return nil, fmt.Errorf("kubewebhook metrics: %w", err)
	}
	if cfg.Metrics, err = admission.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("injector metrics: %w", err)
	}
	m, err := admission.NewMutator(cfg)
	if err != nil {
		return nil, err
	}
	v, err := admission.NewValidator(cfg)
	if err != nil {
		return nil, err
	}
	return NewHandler(HandlerConfig{
		Mutator:         webhook.NewMeasuredWebhook(rec, m),
		Validator:       webhook.NewMeasuredWebhook(rec, v),
		Log:             cfg.Log,
		MaxRequestBytes: maxRequestBytes,
	})
}
