package server

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pod-identity/injector/internal/admission"
)

// NewAdmissionHandler builds the pod webhooks, the enforcement webhook and
// the ServiceAccount webhook from cfg,
// with the review metrics and the injector's own metrics registered on
// reg, and serves them.
func NewAdmissionHandler(cfg admission.Config, reg prometheus.Registerer, maxRequestBytes int64) (http.Handler, error) {
	var err error
	if cfg.Metrics, err = admission.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("injector metrics: %w", err)
	}
	if cfg.Policies != nil {
		if err := admission.RegisterPolicyMetrics(reg, cfg.Policies); err != nil {
			return nil, fmt.Errorf("identity policy metrics: %w", err)
		}
	}
	m, err := admission.NewMutator(cfg)
	if err != nil {
		return nil, err
	}
	v, err := admission.NewValidator(cfg)
	if err != nil {
		return nil, err
	}
	sa, err := admission.NewServiceAccountValidator(cfg)
	if err != nil {
		return nil, err
	}
	en, err := admission.NewEnforcer(cfg)
	if err != nil {
		return nil, err
	}
	return NewHandler(HandlerConfig{Mutator: m, Validator: v, ServiceAccounts: sa, Enforcer: en, Log: cfg.Log, MaxRequestBytes: maxRequestBytes, Metrics: reg})
}
