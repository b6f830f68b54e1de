// Package server serves the admission webhooks over TLS, and health and
// metrics over plain HTTP, and shuts both down gracefully.
package server

import (
	"bytes"

	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/jsonscan"
	"github.com/pod-identity/injector/pkg/admission"
	"github.com/slok/kubewebhook/v2/pkg/model"
	"github.com/slok/kubewebhook/v2/pkg/webhook"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Paths the webhooks are served at.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// DefaultMaxRequestBytes is the largest AdmissionReview accepted: the API
// server's own request limit for an object is 3 MiB, and a review carries it once.
const DefaultMaxRequestBytes = 4 << 20

// The AdmissionReview API versions served.
const (
	reviewV1      = "admission.k8s.io/v1"
	reviewV1beta1 = "admission.k8s.io/v1beta1"
)

// HandlerConfig configures the admission handler.
type HandlerConfig struct {
	// Mutator and Validator are the webhooks, usually wrapped by
	// kubewebhook's webhook.NewMeasuredWebhook for its Prometheus metrics.
	Mutator, Validator webhook.Webhook
	// Log receives a debug line per request and the errors.
	Log logrus.FieldLogger
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes int64
}

// NewHandler returns the admission handler. It speaks the AdmissionReview
// protocol (v1, and v1beta1 for old API servers) in front of kubewebhook
// webhooks: one decode of the review per request, the webhook's answer
// (for the mutator, the engine's additive patch) written back as is, and a
// clear 4xx for anything that is not a review.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if cfg.Mutator == nil || cfg.Validator == nil {
		return nil, errors.New("admission handler: a mutator and a validator are required")
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = l
	}
	mux := http.NewServeMux()
	mux.Handle(MutatePath, &reviewHandler{wh: cfg.Mutator, limit: cfg.MaxRequestBytes, log: cfg.Log})
	mux.Handle(ValidatePath, &reviewHandler{wh: cfg.Validator, limit: cfg.MaxRequestBytes, log: cfg.Log})
	return mux, nil
}

// wireReview is the part of an AdmissionReview request the webhooks use,
// with the object kept raw.
type wireReview struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Request    *wireRequest `json:"request"`
}

type wireRequest struct {
	requestMeta
	Object json.RawMessage `json:"object"`
}

// wirePodReview is wireReview with the object decoded as a pod in the same
// pass, for the common case of a pod review.
type wirePodReview struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Request    *wirePodRequest `json:"request"`
}

type wirePodRequest struct {
	requestMeta
	Object *admission.WirePod `json:"object"`
}

// requestMeta is what a request says besides its object.
type requestMeta struct {
	UID             types.UID                    `json:"uid"`
	Kind            metav1.GroupVersionKind      `json:"kind"`
	Resource        metav1.GroupVersionResource  `json:"resource"`
	RequestKind     *metav1.GroupVersionKind     `json:"requestKind"`
	RequestResource *metav1.GroupVersionResource `json:"requestResource"`
	Name            string                       `json:"name"`
	Namespace       string                       `json:"namespace"`
	Operation       string                       `json:"operation"`
	DryRun          *bool                        `json:"dryRun"`
}

// wireResponse is an AdmissionReview response, the same for v1 and v1beta1.
type wireResponse struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Response   wireResponseBody `json:"response"`
}

type wireResponseBody struct {
	UID       types.UID      `json:"uid"`
	Allowed   bool           `json:"allowed"`
	Result    *metav1.Status `json:"status,omitempty"`
	Patch     []byte         `json:"patch,omitempty"`
	PatchType *string        `json:"patchType,omitempty"`
	Warnings  []string       `json:"warnings,omitempty"`
}

var (
	jsonPatchType = "JSONPatch"
	bodyPool      = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	responsePool  = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}
	operations    = map[string]model.AdmissionReviewOp{
		"CREATE": model.OperationCreate, "UPDATE": model.OperationUpdate,
		"DELETE": model.OperationDelete, "CONNECT": model.OperationConnect,
	}
)

type reviewHandler struct {
	wh    webhook.Webhook
	limit int64
	log   logrus.FieldLogger
}

func (h *reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, fmt.Sprintf("content type %q: expected application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	if r.ContentLength > h.limit {
		http.Error(w, fmt.Sprintf("request body of %d bytes: the limit is %d", r.ContentLength, h.limit), http.StatusRequestEntityTooLarge)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyPool.Put(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, fmt.Sprintf("request body over the limit of %d bytes", h.limit), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	case len(bytes.TrimSpace(buf.Bytes())) == 0:
		http.Error(w, "empty body: expected an AdmissionReview", http.StatusBadRequest)
		return
	}
	rev, pod, err := decodeReview(buf.Bytes())
	if err != nil {
		http.Error(w, "malformed AdmissionReview: "+describe(err), http.StatusBadRequest)
		return
	}
	if rev.Kind != "AdmissionReview" || (rev.APIVersion != reviewV1 && rev.APIVersion != reviewV1beta1) {
		http.Error(w, fmt.Sprintf("could not read %s %q: expected an AdmissionReview of %s or %s", rev.APIVersion, rev.Kind, reviewV1, reviewV1beta1), http.StatusBadRequest)
		return
	}
	if rev.Request == nil {
		http.Error(w, "AdmissionReview has no request", http.StatusBadRequest)
		return
	}
	ar := toModel(&rev)
	ctx := r.Context()
	if pod != nil {
		ctx = admission.ContextWithPod(ctx, pod)
	}
	resp, err := h.wh.Review(ctx, ar)
	out := wireResponse{APIVersion: rev.APIVersion, Kind: "AdmissionReview", Response: wireResponseBody{UID: rev.Request.UID}}
	status := http.StatusOK
	switch res := resp.(type) {
	case nil:
	case *model.MutatingAdmissionResponse:
		out.Response.Allowed = true
		out.Response.Warnings = res.Warnings
		if len(res.JSONPatchPatch) > 0 {
			out.Response.Patch, out.Response.PatchType = res.JSONPatchPatch, &jsonPatchType
		}
	case *model.ValidatingAdmissionResponse:
		out.Response.Allowed = res.Allowed
		out.Response.Warnings = res.Warnings
		if !res.Allowed {
			out.Response.Result = &metav1.Status{Status: metav1.StatusFailure, Message: res.Message, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest}
		}
	}
	if err != nil || resp == nil {
		if err == nil {
			err = errors.New("the webhook gave no answer")
		}
		h.log.WithError(err).WithField("uid", rev.Request.UID).Error("admission review failed")
		status = http.StatusInternalServerError
		out.Response = wireResponseBody{UID: rev.Request.UID, Result: &metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Code: http.StatusInternalServerError}}
	}
	if rev.APIVersion == reviewV1beta1 {
		// Warnings are an AdmissionReview v1 field.
		out.Response.Warnings = nil
	}
	rb := responsePool.Get().(*[]byte)
	body, err := encodeResponse((*rb)[:0], &out)
	defer func() { *rb = body[:0]; responsePool.Put(rb) }()
	if err != nil {
		http.Error(w, "encoding the response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if l, ok := h.log.(*logrus.Logger); !ok || l.IsLevelEnabled(logrus.DebugLevel) {
		h.log.WithFields(logrus.Fields{
			"webhook": h.wh.ID(), "uid": rev.Request.UID, "namespace": rev.Request.Namespace, "operation": rev.Request.Operation,
			"allowed": out.Response.Allowed, "status": status, "duration": time.Since(t0).String(),
		}).Debug("admission review handled")
	}
}

// decodeReview decodes a review. The review and the fields of its pod that
// the webhooks read are scanned in one pass; a body the scanner does not
// take is decoded by encoding/json (which also words the errors), with a
// pod-shaped object decoded as a pod and any other object kept raw.
func decodeReview(body []byte) (wireReview, *admission.WirePod, error) {
	if rev, pod, err := scanReview(body); err == nil {
		return rev, pod, nil
	}
	var pr wirePodReview
	err := json.Unmarshal(body, &pr)
	if err == nil {
		rev := wireReview{APIVersion: pr.APIVersion, Kind: pr.Kind}
		if r := pr.Request; r != nil {
			rev.Request = &wireRequest{requestMeta: r.requestMeta}
			return rev, r.Object, nil
		}
		return rev, nil, nil
	}
	var rev wireReview
	if err := json.Unmarshal(body, &rev); err != nil {
		return rev, nil, err
	}
	return rev, nil, nil
}

// scanReview reads a review with jsonscan.
func scanReview(body []byte) (wireReview, *admission.WirePod, error) {
	var rev wireReview
	var pod *admission.WirePod
	s := jsonscan.New(body)
	err := s.Object(func(key []byte) error {
		var err error
		switch string(key) {
		case "apiVersion":
			rev.APIVersion, err = s.String()
		case "kind":
			rev.Kind, err = s.String()
		case "request":
			if s.Null() {
				rev.Request = nil
				return nil
			}
			r := &wireRequest{}
			rev.Request = r
			err = s.Object(func(key []byte) error {
				var err error
				switch string(key) {
				case "uid":
					var uid string
					uid, err = s.String()
					r.UID = types.UID(uid)
				case "kind":
					err = scanGVK(s, &r.Kind)
				case "requestKind":
					r.RequestKind = &metav1.GroupVersionKind{}
					err = scanGVK(s, r.RequestKind)
				case "resource":
					err = scanGVR(s, &r.Resource)
				case "requestResource":
					r.RequestResource = &metav1.GroupVersionResource{}
					err = scanGVR(s, r.RequestResource)
				case "name":
					r.Name, err = s.String()
				case "namespace":
					r.Namespace, err = s.String()
				case "operation":
					r.Operation, err = s.String()
				case "dryRun":
					if !s.Null() {
						var b bool
						b, err = s.Bool()
						r.DryRun = &b
					}
				case "object":
					if !s.Null() {
						pod, err = admission.ScanPod(s)
					}
				default:
					err = s.SkipUnless(key, "uid", "kind", "requestKind", "resource", "requestResource", "name", "namespace", "operation", "dryRun", "object")
				}
				return err
			})
		default:
			err = s.SkipUnless(key, "apiVersion", "kind", "request")
		}
		return err
	})
	if err == nil {
		err = s.End()
	}
	return rev, pod, err
}

func scanGVK(s *jsonscan.Scanner, gvk *metav1.GroupVersionKind) error {
	return s.Object(func(key []byte) error {
		var err error
		switch string(key) {
		case "group":
			gvk.Group, err = s.String()
		case "version":
			gvk.Version, err = s.String()
		case "kind":
			gvk.Kind, err = s.String()
		default:
			err = s.SkipUnless(key, "group", "version", "kind")
		}
		return err
	})
}

func scanGVR(s *jsonscan.Scanner, gvr *metav1.GroupVersionResource) error {
	return s.Object(func(key []byte) error {
		var err error
		switch string(key) {
		case "group":
			gvr.Group, err = s.String()
		case "version":
			gvr.Version, err = s.String()
		case "resource":
			gvr.Resource, err = s.String()
		default:
			err = s.SkipUnless(key, "group", "version", "resource")
		}
		return err
	})
}

func toModel(rev *wireReview) model.AdmissionReview {
	req := rev.Request
	op, ok := operations[req.Operation]
	if !ok {
		op = model.OperationUnknown
	}
	version := model.AdmissionReviewVersionV1
	if rev.APIVersion == reviewV1beta1 {
		version = model.AdmissionReviewVersionV1beta1
	}
	gvk, gvr := req.RequestKind, req.RequestResource
	if gvk == nil {
		gvk = &req.Kind
	}
	if gvr == nil {
		gvr = &req.Resource
	}
	return model.AdmissionReview{
		ID: string(req.UID), Name: req.Name, Namespace: req.Namespace, Operation: op, Version: version,
		RequestGVK: gvk, RequestGVR: gvr, NewObjectRaw: req.Object,
		DryRun: req.DryRun != nil && *req.DryRun,
	}
}

// encodeResponse appends the response to b. The common answer, allowed with or
// without a patch, is written directly; anything with a status goes
// through encoding/json.
func encodeResponse(b []byte, out *wireResponse) ([]byte, error) {
	r := &out.Response
	if r.Result != nil {
		return json.Marshal(out)
	}
	b = append(b, `{"apiVersion":`...)
	b = appendJSONString(b, out.APIVersion)
	b = append(b, `,"kind":"AdmissionReview","response":{"uid":`...)
	b = appendJSONString(b, string(r.UID))
	b = append(b, `,"allowed":`...)
	b = strconv.AppendBool(b, r.Allowed)
	if len(r.Patch) > 0 {
		b = append(b, `,"patch":"`...)
		n := base64.StdEncoding.EncodedLen(len(r.Patch))
		b = slices.Grow(b, n)
		base64.StdEncoding.Encode(b[len(b):len(b)+n], r.Patch)
		b = append(b[:len(b)+n], `","patchType":"JSONPatch"`...)
	}
	if len(r.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range r.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, "}}"...), nil
}

func appendJSONString(b []byte, s string) []byte {
	raw, _ := json.Marshal(s)
	return append(b, raw...)
}

// describe words a JSON decoding error for the client, without Go type names.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "expected a JSON object"
		}
		return fmt.Sprintf("field %s: unexpected JSON %s", te.Field, te.Value)
	}
	return err.Error()
}
