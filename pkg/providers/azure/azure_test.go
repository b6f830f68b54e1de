package azure_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/providers"
	"github.com/pod-identity/injector/pkg/providers/azure"
)

const client = "11111111-2222-3333-4444-555555555555"

func req(podLabels, podAnn, saAnn map[string]string) providers.Request {
	return providers.Request{Namespace: "ns", PodName: "web", PodMeta: &metav1.ObjectMeta{Labels: podLabels, Annotations: podAnn},
		ServiceAccount: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Annotations: saAnn}}}
}

var use = map[string]string{azure.UseLabel: "true"}

func env(inj *providers.Injection) map[string]string {
	out := map[string]string{}
	for _, g := range inj.Env {
		for _, v := range g.Vars {
			out[v.Name] = v.Value
		}
	}
	return out
}

func TestTheAzureProvider(t *testing.T) {
	tests := []struct {
		name     string
		cfg      azure.Config
		r        providers.Request
		none     bool
		invalid  string // the annotation named by the error
		env      map[string]string
		noEnv    []string
		warns    []string
		exp      int64
		skipping []string
	}{
		{name: "a pod without the use label gets nothing, and a warning", r: req(nil, nil, map[string]string{azure.ClientIDAnnotation: client}), none: true, warns: []string{"it is not labelled azure.workload.identity/use=true"}},
		{name: "the use label must say true", r: req(map[string]string{azure.UseLabel: "yes"}, nil, map[string]string{azure.ClientIDAnnotation: client}), none: true, warns: []string{`its label azure.workload.identity/use is "yes"`}},
		{name: "an explicit false is a silent opt-out", r: req(map[string]string{azure.UseLabel: "false"}, nil, map[string]string{azure.ClientIDAnnotation: client}), none: true},
		{name: "a serviceaccount not set up for Azure says nothing", r: req(nil, nil, nil), none: true},
		{name: "client, tenant, token file and authority are injected", r: req(use, nil, map[string]string{azure.ClientIDAnnotation: client, azure.TenantIDAnnotation: "contoso.onmicrosoft.com"}),
			env: map[string]string{"AZURE_CLIENT_ID": client, "AZURE_TENANT_ID": "contoso.onmicrosoft.com", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token", "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/"}, exp: 3600},
		{name: "the flag's tenant stands in for a missing annotation", cfg: azure.Config{TenantID: "tenant-from-flag"}, r: req(use, nil, map[string]string{azure.ClientIDAnnotation: client}),
			env: map[string]string{"AZURE_TENANT_ID": "tenant-from-flag"}, exp: 3600},
		{name: "no tenant anywhere leaves it out with a warning", r: req(use, nil, map[string]string{azure.ClientIDAnnotation: client}),
			noEnv: []string{"AZURE_TENANT_ID"}, warns: []string{"AZURE_TENANT_ID was not injected"}, exp: 3600},
		{name: "no client ID leaves it out with a warning", r: req(use, nil, map[string]string{azure.TenantIDAnnotation: "t"}),
			noEnv: []string{"AZURE_CLIENT_ID"}, warns: []string{"AZURE_CLIENT_ID was not injected"}, exp: 3600},
		{name: "a client ID that is not a GUID is invalid", r: req(use, nil, map[string]string{azure.ClientIDAnnotation: "my-app"}), invalid: azure.ClientIDAnnotation},
		{name: "a tenant with a slash is invalid", r: req(use, nil, map[string]string{azure.ClientIDAnnotation: client, azure.TenantIDAnnotation: "a/b"}), invalid: azure.TenantIDAnnotation},
		{name: "the pod's expiration beats the serviceaccount's", r: req(use, map[string]string{azure.ExpirationAnnotation: "7200"}, map[string]string{azure.ClientIDAnnotation: client, azure.TenantIDAnnotation: "t", azure.ExpirationAnnotation: "5000"}), exp: 7200},
		{name: "an expiration under an hour is invalid, not clamped", r: req(use, nil, map[string]string{azure.ClientIDAnnotation: client, azure.ExpirationAnnotation: "600"}), invalid: azure.ExpirationAnnotation},
		{name: "skip-containers is split on semicolons", r: req(use, map[string]string{azure.SkipAnnotation: "a; b"}, map[string]string{azure.ClientIDAnnotation: client, azure.TenantIDAnnotation: "t"}), exp: 3600, skipping: []string{"a", "b"}},
		{name: "the authority host flag is injected", cfg: azure.Config{AuthorityHost: "https://login.chinacloudapi.cn/"}, r: req(use, nil, map[string]string{azure.ClientIDAnnotation: client, azure.TenantIDAnnotation: "t"}),
			env: map[string]string{"AZURE_AUTHORITY_HOST": "https://login.chinacloudapi.cn/"}, exp: 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := azure.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			inj, err := p.Inject(tt.r)
			switch {
			case tt.invalid != "":
				if ie, ok := err.(*providers.InvalidError); !ok || ie.Annotation != tt.invalid || ie.Provider != "azure" {
					t.Fatalf("error = %v, want an InvalidError naming %s", err, tt.invalid)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tt.none:
				if inj != nil && len(inj.Volumes)+len(inj.Mounts)+len(inj.Env)+len(inj.Labels)+len(inj.Annotations) > 0 {
					t.Fatalf("injected %+v", inj)
				}
				var got []string
				if inj != nil {
					got = inj.Warnings
				}
				if len(got) != len(tt.warns) || (len(got) > 0 && !strings.Contains(got[0], tt.warns[0])) {
					t.Fatalf("warnings %q, want %q", got, tt.warns)
				}
				return
			case inj == nil:
				t.Fatal("nothing injected")
			}
			got := env(inj)
			for k, v := range tt.env {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tt.noEnv {
				if _, ok := got[k]; ok {
					t.Errorf("%s injected", k)
				}
			}
			for _, g := range inj.Env {
				if len(g.Vars) != 1 || g.Name != g.Vars[0].Name {
					t.Errorf("group %+v: each variable is a group of its own, added unless the container sets it", g)
				}
			}
			if strings.Join(inj.TokenFileVariables, ",") != "AZURE_FEDERATED_TOKEN_FILE" {
				t.Errorf("token file variables %q", inj.TokenFileVariables)
			}
			for _, w := range tt.warns {
				if !strings.Contains(strings.Join(inj.Warnings, "\n"), w) {
					t.Errorf("warnings %q lack %q", inj.Warnings, w)
				}
			}
			if len(tt.warns) == 0 && len(inj.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", inj.Warnings)
			}
			v := inj.Volumes[0].Projected.Sources[0].ServiceAccountToken
			if inj.Volumes[0].Name != azure.VolumeName || v.Audience != azure.Audience || *v.ExpirationSeconds != tt.exp || v.Path != azure.TokenPath {
				t.Errorf("volume %s: audience %s, expiration %d, path %s", inj.Volumes[0].Name, v.Audience, *v.ExpirationSeconds, v.Path)
			}
			if len(inj.Mounts) != 1 || inj.Mounts[0].MountPath != azure.MountPath || inj.Mounts[0].VolumeName != azure.VolumeName {
				t.Errorf("mounts %+v", inj.Mounts)
			}
			if strings.Join(inj.SkipContainers, ",") != strings.Join(tt.skipping, ",") {
				t.Errorf("skip %v, want %v", inj.SkipContainers, tt.skipping)
			}
		})
	}
}

// endpoint is a configuration with the custom token endpoint on and t's CA
// settings.
func endpoint(t azure.TokenEndpoint) azure.Config {
	t.Suffix, t.Audience = "token-proxy", "api://AKSIdentityTokenProxy"
	return azure.Config{TokenEndpoint: t}
}

func TestTheAzureConfigurationIsChecked(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  azure.Config
		says string
	}{
		{name: "a tenant flag with a slash", cfg: azure.Config{TenantID: "a/b"}, says: "--azure-tenant-id"},
		{name: "an authority host over plain http", cfg: azure.Config{AuthorityHost: "http://login.example/"}, says: "--azure-authority-host"},
		{name: "a trust bundle signer that is not a signer name", cfg: endpoint(azure.TokenEndpoint{CASigner: "token-proxy-ca"}),
			says: `--azure-kubernetes-ca-trust-bundle-signer "token-proxy-ca": expected a signer name`},
		{name: "a trust bundle selector without a signer", cfg: endpoint(azure.TokenEndpoint{CASelector: "tier=proxy"}),
			says: "expected --azure-kubernetes-ca-trust-bundle-signer as well"},
		{name: "a trust bundle selector that does not parse", cfg: endpoint(azure.TokenEndpoint{CASigner: "example.com/ca", CASelector: "tier in (a"}),
			says: `--azure-kubernetes-ca-trust-bundle-selector "tier in (a": expected a label selector`},
		{name: "two sources of the CA", cfg: endpoint(azure.TokenEndpoint{CAConfigMap: "ca", CASigner: "example.com/ca"}),
			says: "set one at most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := azure.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error = %v, want one naming %s", err, tt.says)
			}
		})
	}
}
