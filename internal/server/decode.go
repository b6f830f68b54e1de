package server

import (
	"encoding/json"
	"errors"

	"github.com/slok/kubewebhook/v2/pkg/model"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/jsonscan"
)

// wireReview is an AdmissionReview request as read off the wire: the
// fields of the request, its objects kept raw, and the object read as a pod
// in the same pass.
type wireReview struct {
	APIVersion string
	Kind       string
	Request    *wireRequest
}

// errHead stops reviewHead once it has what it wants.
var errHead = errors.New("head read")

// reviewHead reads the apiVersion and the request's uid from the start of a
// review, which may be cut anywhere after them (a body over the size
// limit). An apiVersion it does not find is taken as v1. It reads nothing
// past the uid, and whatever the input, it returns.
func reviewHead(head []byte) (apiVersion, uid string) {
	s := jsonscan.New(head)
	_ = s.Object(func(key []byte) error {
		switch string(key) {
		case "apiVersion":
			v, err := s.String()
			apiVersion = v
			return err
		case "request":
			return s.Object(func(key []byte) error {
				if string(key) != "uid" {
					return s.Skip()
				}
				v, err := s.String()
				if err == nil {
					uid = v
					return errHead
				}
				return err
			})
		}
		return s.Skip()
	})
	if apiVersion != reviewV1beta1 {
		apiVersion = reviewV1
	}
	return apiVersion, uid
}

// wireRequest is an AdmissionReview's request.
type wireRequest struct {
	UID                string
	Kind               metav1.GroupVersionKind
	Resource           metav1.GroupVersionResource
	SubResource        string
	RequestKind        *metav1.GroupVersionKind
	RequestResource    *metav1.GroupVersionResource
	RequestSubResource string
	Name               string
	Namespace          string
	Operation          string
	UserInfo           authenticationv1.UserInfo
	Object             []byte
	OldObject          []byte
	Options            []byte
	DryRun             *bool
	// pod is Object read as a pod; podErr says why it could not be.
	pod    *admission.WirePod
	podErr error
}

// decodeReview reads a review in one pass with jsonscan: its request's
// fields, its objects kept raw (slices of body), and the object read as a
// pod. Nothing else is decoded: what the webhooks do not read is checked
// and skipped. Input an API server never sends (duplicate or case-variant
// member names, nesting deeper than encoding/json allows) is refused.
func decodeReview(body []byte) (wireReview, error) {
	var rev wireReview
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
			rev.Request = &wireRequest{}
			err = scanRequest(s, rev.Request)
		default:
			err = s.SkipUnless(key, "apiVersion", "kind", "request")
		}
		return err
	})
	if err == nil {
		err = s.End()
	}
	return rev, err
}

func scanRequest(s *jsonscan.Scanner, r *wireRequest) error {
	return s.Object(func(key []byte) error {
		var err error
		switch string(key) {
		case "uid":
			r.UID, err = s.String()
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
		case "subResource":
			r.SubResource, err = s.String()
		case "requestSubResource":
			r.RequestSubResource, err = s.String()
		case "name":
			r.Name, err = s.String()
		case "namespace":
			r.Namespace, err = s.String()
		case "operation":
			r.Operation, err = s.String()
		case "userInfo":
			var raw []byte
			if raw, err = s.Raw(); err == nil {
				err = json.Unmarshal(raw, &r.UserInfo)
			}
		case "dryRun":
			if !s.Null() {
				var b bool
				b, err = s.Bool()
				r.DryRun = &b
			}
		case "object":
			r.Object, r.pod, r.podErr, err = scanObject(s)
		case "oldObject":
			r.OldObject, err = rawUnlessNull(s)
		case "options":
			r.Options, err = rawUnlessNull(s)
		default:
			err = s.SkipUnless(key, "uid", "kind", "requestKind", "resource", "requestResource", "subResource", "requestSubResource",
				"name", "namespace", "operation", "userInfo", "dryRun", "object", "oldObject", "options")
		}
		return err
	})
}

// scanObject reads the request's object raw and, in the same pass, as a
// pod. An object that is not a pod (another kind, or a malformed pod) is
// read again raw, with the reason it is not a pod; only input that is not
// JSON, or nests too deeply, is an error.
func scanObject(s *jsonscan.Scanner) (raw []byte, pod *admission.WirePod, podErr, err error) {
	if s.Null() {
		return nil, nil, nil, nil
	}
	start := s.Start()
	pod, podErr = admission.ScanPod(s)
	if errors.Is(podErr, jsonscan.ErrTooDeep) {
		return nil, nil, nil, podErr
	}
	if podErr != nil {
		s.Reset(start)
		pod = nil
		if err := s.Skip(); err != nil {
			return nil, nil, nil, err
		}
	}
	return s.Since(start), pod, podErr, nil
}

func rawUnlessNull(s *jsonscan.Scanner) ([]byte, error) {
	if s.Null() {
		return nil, nil
	}
	return s.Raw()
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

// model returns the review as kubewebhook's model, filled by kubewebhook's
// own constructors from the AdmissionReview of the version received (the
// objects raw, as they came), so a stock kubewebhook webhook or wrapper
// sees everything it would have seen behind kubewebhook's own handler.
func (rev *wireReview) model() model.AdmissionReview {
	r := rev.Request
	raw := func(b []byte) runtime.RawExtension { return runtime.RawExtension{Raw: b} }
	if rev.APIVersion == reviewV1beta1 {
		return model.NewAdmissionReviewV1Beta1(&admissionv1beta1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: rev.APIVersion, Kind: rev.Kind},
			Request: &admissionv1beta1.AdmissionRequest{
				UID: types.UID(r.UID), Kind: r.Kind, Resource: r.Resource, SubResource: r.SubResource,
				RequestKind: r.RequestKind, RequestResource: r.RequestResource, RequestSubResource: r.RequestSubResource,
				Name: r.Name, Namespace: r.Namespace, Operation: admissionv1beta1.Operation(r.Operation), UserInfo: r.UserInfo,
				Object: raw(r.Object), OldObject: raw(r.OldObject), DryRun: r.DryRun, Options: raw(r.Options),
			},
		})
	}
	return model.NewAdmissionReviewV1(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: rev.APIVersion, Kind: rev.Kind},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID(r.UID), Kind: r.Kind, Resource: r.Resource, SubResource: r.SubResource,
			RequestKind: r.RequestKind, RequestResource: r.RequestResource, RequestSubResource: r.RequestSubResource,
			Name: r.Name, Namespace: r.Namespace, Operation: admissionv1.Operation(r.Operation), UserInfo: r.UserInfo,
			Object: raw(r.Object), OldObject: raw(r.OldObject), DryRun: r.DryRun, Options: raw(r.Options),
		},
	})
}

// wireResponse is an AdmissionReview response, the same for v1 and v1beta1.
type wireResponse struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Response   wireResponseBody `json:"response"`
}

type wireResponseBody struct {
	UID       string         `json:"uid"`
	Allowed   bool           `json:"allowed"`
	Result    *metav1.Status `json:"status,omitempty"`
	Patch     []byte         `json:"patch,omitempty"`
	PatchType *string        `json:"patchType,omitempty"`
	Warnings  []string       `json:"warnings,omitempty"`
}
