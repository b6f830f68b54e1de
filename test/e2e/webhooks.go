package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// Webhooks are the shipped webhook configurations: the pod webhook, the
// ServiceAccount webhook and the enforcement webhook.
type Webhooks struct {
	Pods            *admissionregv1.MutatingWebhookConfiguration
	ServiceAccounts *admissionregv1.ValidatingWebhookConfiguration
	Enforce         *admissionregv1.ValidatingWebhookConfiguration
}

// ShippedWebhooks reads the webhook configurations of deploy/manifests and
// points them at url (the injector under test, trusted through caPEM)
// instead of the in-cluster Service; nothing else changes.
func ShippedWebhooks(repoRoot, url string, caPEM []byte) (Webhooks, error) {
	var out Webhooks
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "manifests", "webhooks.yaml"))
	if err != nil {
		return out, err
	}
	var mut *admissionregv1.MutatingWebhookConfiguration
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return out, err
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			mut = &admissionregv1.MutatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict([]byte(doc), mut); err != nil {
				return out, err
			}
			for i := range mut.Webhooks {
				mut.Webhooks[i].ClientConfig = loopback(mut.Webhooks[i].ClientConfig, url, caPEM)
			}
			out.Pods = mut
		case "ValidatingWebhookConfiguration":
			val := &admissionregv1.ValidatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict([]byte(doc), val); err != nil {
				return out, err
			}
			enforce := false
			for i, w := range val.Webhooks {
				switch {
				case len(w.Rules) == 1 && len(w.Rules[0].Resources) == 1 && w.Rules[0].Resources[0] == "serviceaccounts":
				case len(w.Rules) == 1 && len(w.Rules[0].Resources) > 0 && w.Rules[0].Resources[0] == "pods" && w.ClientConfig.Service != nil &&
					w.ClientConfig.Service.Path != nil && *w.ClientConfig.Service.Path == "/enforce":
					enforce = true
				default:
					return out, fmt.Errorf("validating webhook %s is neither the serviceaccount nor the enforcement webhook", w.Name)
				}
				val.Webhooks[i].ClientConfig = loopback(w.ClientConfig, url, caPEM)
			}
			if enforce {
				out.Enforce = val
			} else {
				out.ServiceAccounts = val
			}
		default:
			return out, fmt.Errorf("webhooks.yaml has a %s", meta.Kind)
		}
	}
	if out.Pods == nil || out.ServiceAccounts == nil || out.Enforce == nil {
		return out, fmt.Errorf("webhooks.yaml lacks the pod, the serviceaccount or the enforcement configuration")
	}
	return out, nil
}

func loopback(cc admissionregv1.WebhookClientConfig, url string, caPEM []byte) admissionregv1.WebhookClientConfig {
	path := ""
	if cc.Service != nil && cc.Service.Path != nil {
		path = *cc.Service.Path
	}
	u := url + path
	return admissionregv1.WebhookClientConfig{URL: &u, CABundle: caPEM}
}
