package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/internal/jsonscan"
)

// WirePod is the part of a pod that the engine and the providers read. A
// pod is decoded into it rather than into corev1.Pod: the rest (resources,
// probes, owner references, managed fields, ...) is skipped instead of
// allocated, which is most of the cost of a review.
type WirePod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName string            `json:"serviceAccountName"`
		AutomountToken     *bool             `json:"automountServiceAccountToken"`
		NodeSelector       map[string]string `json:"nodeSelector"`
		Affinity           *corev1.Affinity  `json:"affinity"`
		Volumes            []corev1.Volume   `json:"volumes"`
		InitContainers     []wireContainer   `json:"initContainers"`
		Containers         []wireContainer   `json:"containers"`
		// EphemeralContainers (kubectl debug) share the pod's volumes.
		EphemeralContainers []wireContainer `json:"ephemeralContainers"`
	} `json:"spec"`
}

type wireContainer struct {
	Name         string                 `json:"name"`
	Env          []corev1.EnvVar        `json:"env"`
	EnvFrom      []corev1.EnvFromSource `json:"envFrom"`
	VolumeMounts []corev1.VolumeMount   `json:"volumeMounts"`
}

// Limits on what a pod may hold for the injector to read it. The API
// server's own limit on an object is about 3 MiB, and no real pod comes
// near these; they bound what one review can make the server allocate
// (each decoded list item costs up to 256 bytes, each container up to
// about 1.5 KiB of patch) whatever the body holds.
const (
	// MaxContainers bounds containers and init containers together.
	MaxContainers = 500
	// MaxListItems bounds the items of every list the injector decodes
	// (containers, env, volumeMounts, volumes and what they hold, affinity).
	MaxListItems = 20000
)

// ErrTooLarge says a pod holds more than the injector reads.
var ErrTooLarge = errors.New("pod too large for the injector")

// ReadPod reads a pod object: what Review does with a request's raw object
// when the caller has not read it already.
func ReadPod(raw []byte) (*WirePod, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("the request has no object")
	}
	s := jsonscan.New(raw)
	w, err := ScanPod(s)
	if err == nil {
		err = s.End()
	}
	return w, err
}

// toPod fills pod with the fields of w that providers may read. Lists keep
// their order and their absence (nil) or emptiness, which the patch
// depends on.
func (w *WirePod) toPod(pod *corev1.Pod) {
	pod.Name, pod.GenerateName, pod.Namespace = w.Metadata.Name, w.Metadata.GenerateName, w.Metadata.Namespace
	pod.Labels, pod.Annotations = w.Metadata.Labels, w.Metadata.Annotations
	pod.Spec.ServiceAccountName = w.Spec.ServiceAccountName
	pod.Spec.AutomountServiceAccountToken = w.Spec.AutomountToken
	pod.Spec.NodeSelector = w.Spec.NodeSelector
	pod.Spec.Affinity = w.Spec.Affinity
	pod.Spec.Volumes = w.Spec.Volumes
	pod.Spec.InitContainers = containers(w.Spec.InitContainers)
	pod.Spec.Containers = containers(w.Spec.Containers)
	for _, c := range w.Spec.EphemeralContainers {
		pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: c.Name, Env: c.Env, EnvFrom: c.EnvFrom, VolumeMounts: c.VolumeMounts}})
	}
}

func containers(in []wireContainer) []corev1.Container {
	if in == nil {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i] = corev1.Container{Name: c.Name, Env: c.Env, EnvFrom: c.EnvFrom, VolumeMounts: c.VolumeMounts}
	}
	return out
}

// podScan reads one pod, counting what it decodes against the limits.
type podScan struct {
	s           *jsonscan.Scanner
	items       int
	nContainers int
}

// item counts n decoded list items.
func (p *podScan) item(n int) error {
	if p.items += n; p.items > MaxListItems {
		return fmt.Errorf("more than %d items in its containers, env, volumeMounts, volumes and affinity: %w", MaxListItems, ErrTooLarge)
	}
	return nil
}

// ScanPod reads the next value of s as a pod, keeping the fields WirePod
// has and skipping the rest without allocating. The lists the providers
// compare against (volumes, env, volumeMounts, affinity) are decoded by
// encoding/json from their own bytes, so they come out exactly as a full
// decode would have them.
func ScanPod(s *jsonscan.Scanner) (*WirePod, error) {
	w := &WirePod{}
	p := &podScan{s: s}
	err := s.Object(func(key []byte) error {
		switch string(key) {
		case "metadata":
			return s.Object(func(key []byte) error {
				var err error
				switch string(key) {
				case "name":
					w.Metadata.Name, err = s.String()
				case "generateName":
					w.Metadata.GenerateName, err = s.String()
				case "namespace":
					w.Metadata.Namespace, err = s.String()
				case "labels":
					w.Metadata.Labels, err = s.StringMap()
				case "annotations":
					w.Metadata.Annotations, err = s.StringMap()
				default:
					err = s.SkipUnless(key, "name", "generateName", "namespace", "labels", "annotations")
				}
				return err
			})
		case "spec":
			return s.Object(func(key []byte) error {
				var err error
				switch string(key) {
				case "serviceAccountName":
					w.Spec.ServiceAccountName, err = s.String()
				case "automountServiceAccountToken":
					if !s.Null() {
						var b bool
						b, err = s.Bool()
						w.Spec.AutomountToken = &b
					}
				case "nodeSelector":
					w.Spec.NodeSelector, err = s.StringMap()
				case "affinity":
					err = p.decodeRaw(&w.Spec.Affinity)
				case "volumes":
					err = p.decodeRaw(&w.Spec.Volumes)
				case "initContainers":
					w.Spec.InitContainers, err = p.containers()
				case "containers":
					w.Spec.Containers, err = p.containers()
				case "ephemeralContainers":
					w.Spec.EphemeralContainers, err = p.containers()
				default:
					err = s.SkipUnless(key, "serviceAccountName", "automountServiceAccountToken", "nodeSelector", "affinity", "volumes", "initContainers", "containers", "ephemeralContainers")
				}
				return err
			})
		default:
			return s.SkipUnless(key, "metadata", "spec")
		}
	})
	return w, err
}

func (p *podScan) containers() ([]wireContainer, error) {
	s := p.s
	if s.Null() {
		return nil, nil
	}
	out := []wireContainer{}
	err := s.Array(func() error {
		if p.nContainers++; p.nContainers > MaxContainers {
			return fmt.Errorf("more than %d containers and init containers: %w", MaxContainers, ErrTooLarge)
		}
		if err := p.item(1); err != nil {
			return err
		}
		var c wireContainer
		err := s.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				c.Name, err = s.String()
			case "env":
				c.Env, err = p.env()
			case "volumeMounts":
				c.VolumeMounts, err = p.mounts()
			case "envFrom":
				err = p.decodeRaw(&c.EnvFrom)
			default:
				err = s.SkipUnless(key, "name", "env", "envFrom", "volumeMounts")
			}
			return err
		})
		out = append(out, c)
		return err
	})
	return out, err
}

// env reads a container's env as encoding/json would: null or absent is
// nil, [] is empty.
func (p *podScan) env() ([]corev1.EnvVar, error) {
	s := p.s
	if s.Null() {
		return nil, nil
	}
	out := []corev1.EnvVar{}
	err := s.Array(func() error {
		if err := p.item(1); err != nil {
			return err
		}
		var e corev1.EnvVar
		err := s.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				e.Name, err = s.String()
			case "value":
				e.Value, err = s.String()
			case "valueFrom":
				err = p.decodeRaw(&e.ValueFrom)
			default:
				err = s.SkipUnless(key, "name", "value", "valueFrom")
			}
			return err
		})
		out = append(out, e)
		return err
	})
	return out, err
}

// mounts reads a container's volumeMounts as encoding/json would.
func (p *podScan) mounts() ([]corev1.VolumeMount, error) {
	s := p.s
	if s.Null() {
		return nil, nil
	}
	out := []corev1.VolumeMount{}
	err := s.Array(func() error {
		if err := p.item(1); err != nil {
			return err
		}
		var m corev1.VolumeMount
		err := s.Object(func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				m.Name, err = s.String()
			case "mountPath":
				m.MountPath, err = s.String()
			case "readOnly":
				m.ReadOnly, err = s.Bool()
			case "subPath":
				m.SubPath, err = s.String()
			case "subPathExpr":
				m.SubPathExpr, err = s.String()
			case "mountPropagation":
				err = p.decodeRaw(&m.MountPropagation)
			case "recursiveReadOnly":
				err = p.decodeRaw(&m.RecursiveReadOnly)
			default:
				err = s.SkipUnless(key, "name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly")
			}
			return err
		})
		out = append(out, m)
		return err
	})
	return out, err
}

// decodeRaw decodes the next value into v with encoding/json, after
// counting the items of every list in it against the limit: encoding/json
// allocates a whole struct for each, whatever its few bytes hold.
func (p *podScan) decodeRaw(v any) error {
	before := p.s.Items()
	raw, err := p.s.Raw()
	if err != nil {
		return err
	}
	if err := p.item(p.s.Items() - before); err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
