package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// ShippedWebhooks reads the webhook configurations of deploy/manifests and
// points them at url (the injector under test, trusted through caPEM)
// instead of the in-cluster Service; nothing else changes.
func ShippedWebhooks(repoRoot, url string, caPEM []byte) (*admissionregv1.MutatingWebhookConfiguration, error) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "manifests", "webhooks.yaml"))
	if err != nil {
		return nil, err
	}
	var mut *admissionregv1.MutatingWebhookConfiguration
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, err
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			mut = &admissionregv1.MutatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict([]byte(doc), mut); err != nil {
				return nil, err
			}
			for i := range mut.Webhooks {
				mut.Webhooks[i].ClientConfig = loopback(mut.Webhooks[i].ClientConfig, url, caPEM)
			}
		default:
			return nil, fmt.Errorf("webhooks.yaml has a %s: a pod must cost one webhook call", meta.Kind)
		}
	}
	if mut == nil {
		return nil, fmt.Errorf("webhooks.yaml lacks the mutating configuration")
	}
	return mut, nil
}

func loopback(cc admissionregv1.WebhookClientConfig, url string, caPEM []byte) admissionregv1.WebhookClientConfig {
	path := ""
	if cc.Service != nil && cc.Service.Path != nil {
		path = *cc.Service.Path
	}
	u := url + path
	return admissionregv1.WebhookClientConfig{URL: &u, CABundle: caPEM}
}
