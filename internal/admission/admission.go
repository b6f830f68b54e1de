// Package admission adapts the injection engine to kubewebhook: a mutating
// webhook that answers with the engine's additive patch (never kubewebhook's
// diff of a re-marshalled object) and, in deny mode, denies a pod whose
// identity configuration is invalid in the same call; and a validating
// webhook that denies the same pods, for configurations that still send
// pods to one.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/slok/kubewebhook/v2/pkg/model"
	"github.com/slok/kubewebhook/v2/pkg/webhook"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pod-identity/injector/internal/quote"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/policy"
	"github.com/pod-identity/injector/pkg/providers"
)

// Invalid identity modes.
const (
	// Deny denies a pod whose identity configuration is invalid.
	Deny = "deny"
	// Warn admits it without that provider's injection, with a warning.
	Warn = "warn"
)

// ServiceAccounts looks ServiceAccounts up; *sacache.Cache is the production one.
type ServiceAccounts interface {
	Get(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, sacache.Source, error)
}

// Config configures both webhooks.
type Config struct {
	// Engine decides what to inject.
	Engine *mutate.Engine
	// ServiceAccounts finds a pod's ServiceAccount.
	ServiceAccounts ServiceAccounts
	// InvalidIdentity is Deny or Warn.
	InvalidIdentity string
	// Log receives one info line per mutated pod.
	Log logrus.FieldLogger
	// Metrics, when set, counts injections, skips, denials and lookups.
	Metrics *Metrics
	// Policies, when set, holds the identity policies in force and the
	// namespace labels they select by.
	Policies *policy.Store
}

func (c *Config) defaults() {
	if c.InvalidIdentity == "" {
		c.InvalidIdentity = Deny
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Log = l
	}
}

func (c *Config) validate() error {
	if c.Engine == nil || c.ServiceAccounts == nil {
		return errors.New("admission: an engine and a serviceaccount source are required")
	}
	if c.InvalidIdentity != Deny && c.InvalidIdentity != Warn {
		return fmt.Errorf("--invalid-identity %q: expected deny or warn", c.InvalidIdentity)
	}
	return nil
}

type reviewer struct{ cfg Config }

// newReviewer completes and checks cfg for one of the webhooks.
func newReviewer(cfg Config) (reviewer, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return reviewer{}, err
	}
	return reviewer{cfg}, nil
}

// podReview is a decoded pod admission request.
type podReview struct {
	pod    corev1.Pod
	target mutate.Target
	sa     *corev1.ServiceAccount
	// warning explains why the pod cannot be looked at (no ServiceAccount).
	warning string
}

// errNotPodCreate marks requests the webhooks let through untouched.
var errNotPodCreate = errors.New("not a pod create")

// PodWebhook is a webhook that can be handed the request's pod already
// read (by the HTTP handler, in the same pass as the review), so that it is
// not read twice. Review does the same after reading ar.NewObjectRaw.
type PodWebhook interface {
	webhook.Webhook
	// ReviewPod reviews ar, whose object is pod, or could not be read as a
	// pod for the reason podErr.
	ReviewPod(ctx context.Context, ar model.AdmissionReview, pod *WirePod, podErr error) (model.AdmissionResponse, error)
}

// decode reads the pod of a CREATE request and finds its ServiceAccount.
// Names the API server would refuse are refused before any lookup, log or
// message uses them.
func (r *reviewer) decode(ctx context.Context, ar model.AdmissionReview, w *WirePod, podErr error) (*podReview, error) {
	if ar.Operation != model.OperationCreate || ar.RequestGVK == nil || ar.RequestGVK.Kind != "Pod" || ar.RequestGVK.Group != "" {
		return nil, errNotPodCreate
	}
	if podErr != nil {
		return nil, fmt.Errorf("admission request %s: the object is not a pod the injector can read: %w", quote.Value(ar.ID), podErr)
	}
	if w == nil {
		return nil, fmt.Errorf("admission request %s: the request has no object", quote.Value(ar.ID))
	}
	pr := &podReview{}
	w.toPod(&pr.pod)
	ns := pr.pod.Namespace
	if ns == "" {
		ns = ar.Namespace
	}
	name := pr.pod.Name
	if name == "" {
		name = pr.pod.GenerateName
	}
	saName := pr.pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	if err := validNames(ns, name, saName); err != nil {
		return nil, fmt.Errorf("admission request %s: %w", quote.Value(ar.ID), err)
	}
	pr.target = mutate.Target{Namespace: ns, Name: name, Meta: &pr.pod.ObjectMeta, Spec: &pr.pod.Spec, Policy: r.cfg.Policies.Scope(ns)}
	sa, src, err := r.cfg.ServiceAccounts.Get(ctx, ns, saName)
	r.cfg.Metrics.count(saLookups, string(src))
	if sa == nil {
		reason := "was not found"
		if err != nil {
			reason = "could not be read"
			r.cfg.Log.WithError(err).WithFields(logrus.Fields{"namespace": ns, "serviceaccount": saName}).Warn("serviceaccount lookup failed")
		}
		pr.warning = fmt.Sprintf("pod %q: serviceaccount %q %s, so no cloud identity was injected (create the serviceaccount before the pod)",
			ns+"/"+name, ns+"/"+saName, reason)
	}
	pr.sa = sa
	return pr, nil
}

// validNames checks the names a pod review carries as the API server
// would: a namespace is a DNS label, a ServiceAccount name and a pod name
// are DNS subdomains, and a generateName prefix is one once a suffix is added.
func validNames(namespace, pod, serviceAccount string) error {
	if msg := dnsName(namespace, validation.DNS1123LabelMaxLength, validation.IsDNS1123Label); msg != "" {
		return fmt.Errorf("namespace %s is not a valid namespace name: expected a DNS label (%s)", quote.Value(namespace), msg)
	}
	// A generateName prefix may end in "-": as the API server does, that
	// dash is checked as a letter (a suffix follows it).
	masked := pod
	if strings.HasSuffix(masked, "-") {
		masked = masked[:len(masked)-1] + "a"
	}
	if msg := dnsName(masked, validation.DNS1123SubdomainMaxLength, validation.IsDNS1123Subdomain); pod != "" && msg != "" {
		return fmt.Errorf("pod name %s is not a valid pod name: expected a DNS subdomain (%s)", quote.Value(pod), msg)
	}
	if msg := dnsName(serviceAccount, validation.DNS1123SubdomainMaxLength, validation.IsDNS1123Subdomain); msg != "" {
		return fmt.Errorf("spec.serviceAccountName %s is not a valid serviceaccount name: expected a DNS subdomain (%s)", quote.Value(serviceAccount), msg)
	}
	return nil
}

// dnsName says what is wrong with name, checking its length before the
// pattern so that a megabyte of name costs nothing.
func dnsName(name string, maxLen int, check func(string) []string) string {
	if len(name) > maxLen {
		return fmt.Sprintf("must be no more than %d characters", maxLen)
	}
	if errs := check(name); len(errs) > 0 {
		return errs[0]
	}
	return ""
}

// review reads the pod out of ar and hands it to reviewPod.
func review(ctx context.Context, ar model.AdmissionReview, reviewPod func(context.Context, model.AdmissionReview, *WirePod, error) (model.AdmissionResponse, error)) (model.AdmissionResponse, error) {
	var w *WirePod
	var err error
	if len(ar.NewObjectRaw) > 0 {
		w, err = ReadPod(ar.NewObjectRaw)
	}
	return reviewPod(ctx, ar, w, err)
}

// Mutator is the mutating webhook.
type Mutator struct{ reviewer }

// NewMutator returns the mutating webhook.
func NewMutator(cfg Config) (*Mutator, error) {
	r, err := newReviewer(cfg)
	if err != nil {
		return nil, err
	}
	return &Mutator{r}, nil
}

// ID implements webhook.Webhook.
func (m *Mutator) ID() string { return "pod-identity-mutate" }

// Kind implements webhook.Webhook.
func (m *Mutator) Kind() model.WebhookKind { return model.WebhookKindMutating }

// Review implements webhook.Webhook: it answers with the engine's patch.
func (m *Mutator) Review(ctx context.Context, ar model.AdmissionReview) (model.AdmissionResponse, error) {
	return review(ctx, ar, m.ReviewPod)
}

// ReviewPod implements PodWebhook.
func (m *Mutator) ReviewPod(ctx context.Context, ar model.AdmissionReview, w *WirePod, podErr error) (model.AdmissionResponse, error) {
	pr, err := m.decode(ctx, ar, w, podErr)
	if errors.Is(err, errNotPodCreate) {
		return unchanged(ar.ID), nil
	}
	if err != nil {
		// A body the API server would never send: answer with a clean denial.
		return refuse(ar.ID, []string{err.Error()}), nil
	}
	if pr.sa == nil {
		return unchanged(ar.ID, pr.warning), nil
	}
	res := m.cfg.Engine.Mutate(pr.target, pr.sa)
	warnings := res.Warnings
	m.cfg.Metrics.count(skips, res.Skipped...)
	if len(res.Denied) > 0 {
		return m.deny(ar.ID, pr, res.Denied, warnings), nil
	}
	if len(res.Invalid) > 0 {
		if m.cfg.InvalidIdentity == Deny {
			// Denied here, in the call that would have injected: a pod
			// costs the API server one webhook call.
			return m.deny(ar.ID, pr, res.Invalid, warnings), nil
		}
		warnings = append(warnings, res.InvalidAsWarnings()...)
		m.cfg.Metrics.count(invalidAdmitted, invalidProviders(res.Invalid)...)
	}
	if len(res.Patch) == 0 {
		return unchanged(ar.ID, warnings...), nil
	}
	patch, err := json.Marshal(res.Patch)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: encode patch: %w", pr.target.Namespace, pr.target.Name, err)
	}
	m.cfg.Metrics.count(injections, res.Injected...)
	log := m.cfg.Log.WithFields(logrus.Fields{
		"namespace": pr.target.Namespace, "pod": pr.target.Name, "serviceaccount": pr.sa.Name,
		"providers": strings.Join(res.Injected, ","), "dry_run": ar.DryRun, "warnings": len(warnings),
	})
	log.Info("injected cloud identity")
	if log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		log.WithField("patch", string(patch)).Debug("patch")
	}
	return patched(ar.ID, patch, warnings), nil
}

// Validator is the validating webhook: it denies invalid identity
// configurations in deny mode and admits everything else.
type Validator struct{ reviewer }

// NewValidator returns the validating webhook.
func NewValidator(cfg Config) (*Validator, error) {
	r, err := newReviewer(cfg)
	if err != nil {
		return nil, err
	}
	return &Validator{r}, nil
}

// ID implements webhook.Webhook.
func (v *Validator) ID() string { return "pod-identity-validate" }

// Kind implements webhook.Webhook.
func (v *Validator) Kind() model.WebhookKind { return model.WebhookKindValidating }

// Review implements webhook.Webhook.
func (v *Validator) Review(ctx context.Context, ar model.AdmissionReview) (model.AdmissionResponse, error) {
	return review(ctx, ar, v.ReviewPod)
}

// ReviewPod implements PodWebhook.
func (v *Validator) ReviewPod(ctx context.Context, ar model.AdmissionReview, w *WirePod, podErr error) (model.AdmissionResponse, error) {
	allowed := admit(ar.ID)
	pr, err := v.decode(ctx, ar, w, podErr)
	if errors.Is(err, errNotPodCreate) {
		return allowed, nil
	}
	if err != nil {
		return refuse(ar.ID, []string{err.Error()}), nil
	}
	if pr.sa == nil {
		return allowed, nil
	}
	// The decision of the mutator, without its patch.
	res := v.cfg.Engine.Mutate(pr.target, pr.sa)
	errs := res.Denied
	if v.cfg.InvalidIdentity == Deny {
		errs = append(errs, res.Invalid...)
	}
	if len(errs) == 0 {
		return allowed, nil
	}
	return v.deny(ar.ID, pr, errs, nil), nil
}

// deny refuses a pod whose identity configuration is invalid or refused
// by an identity policy, with every message, and counts and logs the denial.
func (r *reviewer) deny(id string, pr *podReview, errs []error, warnings []string) *model.ValidatingAdmissionResponse {
	r.cfg.Metrics.count(denials, invalidProviders(errs)...)
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	r.cfg.Log.WithFields(logrus.Fields{"namespace": pr.target.Namespace, "pod": pr.target.Name, "serviceaccount": pr.sa.Name}).
		Info("denied pod: invalid identity, or one an identity policy refuses")
	return refuse(id, msgs, warnings...)
}

func invalidProviders(errs []error) []string {
	var out []string
	for _, err := range errs {
		var ie *providers.InvalidError
		var f *policy.Finding
		var big *mutate.PatchTooLargeError
		switch {
		case errors.As(err, &ie):
			out = append(out, ie.Provider)
		case errors.As(err, &f):
			out = append(out, f.Provider)
		case errors.As(err, &big):
			out = append(out, big.Providers...)
		default:
			out = append(out, "unknown")
		}
	}
	return out
}

// Enforcer is the enforcement webhook: a validating webhook on pods,
// called after every mutating webhook and whatever the pod's labels (it
// has no opt-out), that checks the pod as it will be stored against the
// identity policies of its namespace (mutate.Engine.Enforce), and refuses
// an update that changes a credential configuration the pod reads through
// the downward API (mutate.Engine.CheckUpdate).
type Enforcer struct{ reviewer }

// NewEnforcer returns the enforcement webhook.
func NewEnforcer(cfg Config) (*Enforcer, error) {
	r, err := newReviewer(cfg)
	if err != nil {
		return nil, err
	}
	return &Enforcer{r}, nil
}

// ID implements webhook.Webhook.
func (e *Enforcer) ID() string { return "pod-identity-enforce" }

// Kind implements webhook.Webhook.
func (e *Enforcer) Kind() model.WebhookKind { return model.WebhookKindValidating }

// Review implements webhook.Webhook.
func (e *Enforcer) Review(ctx context.Context, ar model.AdmissionReview) (model.AdmissionResponse, error) {
	return review(ctx, ar, e.ReviewPod)
}

// ReviewPod implements PodWebhook.
func (e *Enforcer) ReviewPod(ctx context.Context, ar model.AdmissionReview, w *WirePod, podErr error) (model.AdmissionResponse, error) {
	allowed := admit(ar.ID)
	if ar.Operation == model.OperationUpdate && subResource(ar) == "ephemeralcontainers" {
		// kubectl debug: the new containers share the pod's volumes, its
		// token among them, so the pod is checked again as at creation.
		ar.Operation = model.OperationCreate
	} else if ar.Operation == model.OperationUpdate && ar.RequestGVK != nil && ar.RequestGVK.Kind == "Pod" && ar.RequestGVK.Group == "" {
		return e.reviewUpdate(ar, w, podErr)
	}
	pr, err := e.decode(ctx, ar, w, podErr)
	if errors.Is(err, errNotPodCreate) {
		return allowed, nil
	}
	if err != nil {
		return refuse(ar.ID, []string{err.Error()}), nil
	}
	if pr.target.Policy.Empty() {
		return allowed, nil
	}
	if pr.sa == nil {
		// No ServiceAccount to read: what the pod has itself is still checked.
		saName := pr.pod.Spec.ServiceAccountName
		if saName == "" {
			saName = "default"
		}
		pr.sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: pr.target.Namespace, Name: saName}}
	}
	res := e.cfg.Engine.Enforce(pr.target, pr.sa)
	if len(res.Denied) > 0 {
		return e.deny(ar.ID, pr, res.Denied, res.Warnings), nil
	}
	allowed.Warnings = res.Warnings
	return allowed, nil
}

// subResource is the request's subresource, from the AdmissionReview as
// received.
func subResource(ar model.AdmissionReview) string {
	switch orig := ar.OriginalAdmissionReview.(type) {
	case *admissionv1.AdmissionReview:
		if orig.Request != nil {
			return orig.Request.SubResource
		}
	case *admissionv1beta1.AdmissionReview:
		if orig.Request != nil {
			return orig.Request.SubResource
		}
	}
	return ""
}

// reviewUpdate refuses a pod update that changes a credential
// configuration the pod reads through the downward API.
func (e *Enforcer) reviewUpdate(ar model.AdmissionReview, w *WirePod, podErr error) (model.AdmissionResponse, error) {
	deny := func(msg string) (model.AdmissionResponse, error) {
		return refuse(ar.ID, []string{msg}), nil
	}
	if podErr == nil && w == nil {
		podErr = errors.New("the request has no object")
	}
	if podErr != nil {
		return deny(fmt.Sprintf("admission request %s: the object is not a pod the injector can read: %v", quote.Value(ar.ID), podErr))
	}
	old, err := ReadPod(ar.OldObjectRaw)
	if err != nil {
		return deny(fmt.Sprintf("admission request %s: the old object is not a pod the injector can read: %v", quote.Value(ar.ID), err))
	}
	var cur, was corev1.Pod
	w.toPod(&cur)
	old.toPod(&was)
	ns := cur.Namespace
	if ns == "" {
		ns = ar.Namespace
	}
	errs := e.cfg.Engine.CheckUpdate(ns+"/"+cur.Name, &was.ObjectMeta, &cur.ObjectMeta, &was.Spec)
	if len(errs) == 0 {
		return admit(ar.ID), nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	e.cfg.Log.WithFields(logrus.Fields{"namespace": ns, "pod": cur.Name}).Info("refused a pod update that changes its credential configuration")
	return deny(strings.Join(msgs, "; "))
}

var (
	_ PodWebhook = (*Mutator)(nil)
	_ PodWebhook = (*Validator)(nil)
	_ PodWebhook = (*Enforcer)(nil)
)

// ServiceAccountValidator is the validating webhook for ServiceAccounts:
// a ServiceAccount whose identity annotations are invalid (in deny mode)
// or not allowed by the identity policies is refused when it is written,
// so `kubectl annotate` fails at once rather than the next pod. An update
// that changes no identity annotation is admitted, with warnings.
type ServiceAccountValidator struct{ reviewer }

// NewServiceAccountValidator returns the ServiceAccount webhook.
func NewServiceAccountValidator(cfg Config) (*ServiceAccountValidator, error) {
	r, err := newReviewer(cfg)
	if err != nil {
		return nil, err
	}
	return &ServiceAccountValidator{r}, nil
}

// ID implements webhook.Webhook.
func (v *ServiceAccountValidator) ID() string { return "pod-identity-serviceaccounts" }

// Kind implements webhook.Webhook.
func (v *ServiceAccountValidator) Kind() model.WebhookKind { return model.WebhookKindValidating }

// Review implements webhook.Webhook.
func (v *ServiceAccountValidator) Review(_ context.Context, ar model.AdmissionReview) (model.AdmissionResponse, error) {
	allowed := admit(ar.ID)
	if (ar.Operation != model.OperationCreate && ar.Operation != model.OperationUpdate) ||
		ar.RequestGVK == nil || ar.RequestGVK.Kind != "ServiceAccount" || ar.RequestGVK.Group != "" {
		return allowed, nil
	}
	deny := func(err error) (model.AdmissionResponse, error) {
		return refuse(ar.ID, []string{err.Error()}), nil
	}
	sa, err := readServiceAccount(ar.NewObjectRaw, ar.Namespace)
	if err != nil {
		return deny(fmt.Errorf("admission request %s: %w", quote.Value(ar.ID), err))
	}
	var old *corev1.ServiceAccount
	if ar.Operation == model.OperationUpdate {
		if old, err = readServiceAccount(ar.OldObjectRaw, ar.Namespace); err != nil {
			return deny(fmt.Errorf("admission request %s: old object: %w", quote.Value(ar.ID), err))
		}
	}
	res := v.cfg.Engine.CheckServiceAccount(old, sa, v.cfg.Policies.Scope(sa.Namespace))
	errs, warnings := res.Denied, res.Warnings
	if v.cfg.InvalidIdentity == Deny {
		errs = append(errs, res.Invalid...)
	} else {
		warnings = append(warnings, mutate.Result{Invalid: res.Invalid}.InvalidAsWarnings()...)
	}
	if len(errs) == 0 {
		allowed.Warnings = warnings
		return allowed, nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	v.cfg.Log.WithFields(logrus.Fields{"namespace": sa.Namespace, "serviceaccount": sa.Name, "operation": string(ar.Operation)}).
		Info("refused a serviceaccount identity")
	return refuse(ar.ID, msgs, warnings...), nil
}

// readServiceAccount decodes a ServiceAccount of a review, checking its
// names as the API server would before anything uses them.
func readServiceAccount(raw []byte, namespace string) (*corev1.ServiceAccount, error) {
	if len(raw) == 0 {
		return nil, errors.New("the request has no object")
	}
	sa := &corev1.ServiceAccount{}
	if err := json.Unmarshal(raw, sa); err != nil {
		return nil, fmt.Errorf("the object is not a serviceaccount the injector can read: %w", err)
	}
	if sa.Namespace == "" {
		sa.Namespace = namespace
	}
	if err := validNames(sa.Namespace, "", sa.Name); err != nil {
		return nil, err
	}
	return sa, nil
}
