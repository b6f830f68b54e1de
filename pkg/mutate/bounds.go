package mutate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pod-identity/injector/internal/quote"

	corev1 "k8s.io/api/core/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

// MaxPatchBytes bounds what the engine adds to one pod: the API server
// stores an object in etcd, whose default request limit
// (--max-request-bytes) is 1.5 MiB, so a pod grown past that by its patch
// could never be stored. The engine refuses the pod with a message rather
// than build such a patch.
const MaxPatchBytes = 3 << 19 // 1.5 MiB

// oversized returns an *providers.InvalidError for the first value of the
// ServiceAccount's annotations and labels that provider p reads and that is
// longer than MaxValueBytes, nil when there is none.
func oversized(p providers.Provider, sa *corev1.ServiceAccount) error {
	prefixes := p.AnnotationPrefixes()
	read := func(k string) bool { return hasAnyPrefix(k, prefixes) }
	if kr, ok := p.(providers.KeyReader); ok {
		// Only what the provider reads: an annotation under its prefix
		// that nothing reads is nobody's identity.
		keys := kr.ServiceAccountKeys()
		read = func(k string) bool { return slices.Contains(keys, k) }
	}
	for _, labels := range [2]bool{false, true} {
		m, kind := sa.Annotations, "an annotation"
		if labels {
			m, kind = sa.Labels, "a label"
		}
		for k, v := range m {
			if len(v) <= providers.MaxValueBytes || !read(k) {
				continue
			}
			return &providers.InvalidError{Provider: p.Name(), Kind: "ServiceAccount", Object: sa.Namespace + "/" + sa.Name,
				Annotation: k, Value: cut(v),
				Expected: fmt.Sprintf("%s value of at most %d bytes, and this one has more (the longest identity value a cloud accepts, an IAM role ARN, is at most 2048 characters)", kind, providers.MaxValueBytes)}
		}
	}
	return nil
}

// cut returns the first bytes of an oversized value, for its message.
func cut(v string) string {
	n := quote.MaxBytes - len("…") // short enough to be quoted whole
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n] + "…"
}

func hasAnyPrefix(k string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// PatchTooLargeError says the injection would grow a pod past MaxPatchBytes.
type PatchTooLargeError struct {
	// Pod names the pod, "namespace/name".
	Pod string
	// Providers are the providers whose injection it is.
	Providers []string
	// Bytes is the size of the patch, about; Containers how many
	// containers get something.
	Bytes, Containers int
}

// Error implements error.
func (e *PatchTooLargeError) Error() string {
	return fmt.Sprintf("pod %s: the %s identity would add about %d bytes to the pod (%d containers), more than the %d bytes an object may have in etcd, so the pod could not be stored: name the containers that need the identity in the provider's only-containers annotation, or shorten the serviceaccount's identity annotations",
		strconv.Quote(e.Pod), strings.Join(e.Providers, ", "), e.Bytes, e.Containers, MaxPatchBytes)
}

// Bytes of JSON patch around each added item, above its strings: a
// generous bound on `{"op":"add","path":"/spec/initContainers/499/env/-","value":{"name":"","value":""}}`
// and the like, so the estimate is never below the encoded patch.
const opOverhead = 96

// size estimates the encoded size of the additions without encoding
// anything, and counts the containers that get something.
func (s *state) size() (bytes, containers int) {
	for _, a := range s.annotations {
		bytes += opOverhead + 2*len(a.k) + len(a.v)
	}
	for _, a := range s.labels {
		bytes += opOverhead + 2*len(a.k) + len(a.v)
	}
	for _, v := range s.volumes {
		bytes += 4*opOverhead + 2*len(v.Name)
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if t := src.ServiceAccountToken; t != nil {
					bytes += len(t.Audience) + len(t.Path)
				}
			}
		}
	}
	for ci := range s.containers {
		if len(s.env[ci]) == 0 && len(s.mounts[ci]) == 0 {
			continue
		}
		containers++
		for _, e := range s.env[ci] {
			bytes += opOverhead + len(e.Name) + len(e.Value)
			if e.ValueFrom != nil {
				bytes += opOverhead
			}
		}
		for _, m := range s.mounts[ci] {
			bytes += opOverhead + len(m.Name) + len(m.MountPath)
		}
	}
	return bytes, containers
}
