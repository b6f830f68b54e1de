package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// TestVaultLoginWithThePodsOwnToken: deploy/providers/vault.yaml, loaded
// by the suite's injector. The role `injector trust` prints is written to
// the fake Vault as `vault write auth/jwt/role/<name> -` would; the lines
// the file documents, with Vault's own Go client configured from the
// environment the pod gets, log in with the pod's token and read a secret.
// Another ServiceAccount's token, and a token for another audience, are
// refused by the role.
func TestVaultLoginWithThePodsOwnToken(t *testing.T) {
	ns := namespace(t, nil)
	role := "reader-" + randomHex(4)
	annotations := map[string]string{"vault.pod-identity.io/role": role, "vault.pod-identity.io/address": fakes.Vault.URL}
	reader := serviceAccount(t, ns, "reader", annotations)
	serviceAccount(t, ns, "intruder", annotations)
	docs := printTrustWith(t, []string{"--provider-config", filepath.Join(cluster.repoRoot, "deploy", "providers", "vault.yaml")}, reader)
	if len(docs) != 1 || docs[0].Target != "auth/jwt/role/"+role {
		t.Fatalf("injector trust printed %+v, want the role auth/jwt/role/%s", docs, role)
	}
	if err := fakes.Vault.WriteRole("jwt", role, docs[0].Object); err != nil {
		t.Fatal(err)
	}

	stored := storedPod(t, ns, podSpec("web", "reader"))
	assertInjected(t, stored, "vault-token", "/var/run/secrets/vault", map[string]string{
		"VAULT_ROLE":       role,
		"VAULT_JWT_FILE":   "/var/run/secrets/vault/token",
		"VAULT_AUTH_MOUNT": "jwt",
		"VAULT_ADDR":       fakes.Vault.URL,
	})
	if src := volume(stored, "vault-token").Projected.Sources[0].ServiceAccountToken; src.Audience != "vault" || *src.ExpirationSeconds != 600 {
		t.Errorf("token projection %+v, want audience vault for 600 s", src)
	}
	exchanges(t, ns, stored, "vault-token", "/var/run/secrets/vault/token", "reader", "vault", 600, map[string]string{"VAULT_CACERT": fakes.Vault.CAFile},
		readVaultSecret, Subject(ns, "reader"), []exchange{
			{name: "the pod's own token logs in and reads the secret", sa: "reader", audience: "vault"},
			{name: "another serviceaccount's token is refused by the role's bound subject", sa: "intruder", audience: "vault", refusal: "sub claim does not match bound subject"},
			{name: "a token for another audience is refused by the role's bound audiences", sa: "reader", audience: "sts.amazonaws.com", refusal: "invalid audience"},
		})
}

// readVaultSecret logs in as deploy/providers/vault.yaml documents it,
// with Vault's Go client configured from the environment alone, and reads
// one secret with the Vault token it gets.
func readVaultSecret() (string, error) {
	client, err := vault.NewClient(vault.DefaultConfig())
	if err != nil {
		return "", err
	}
	jwt, err := os.ReadFile(os.Getenv("VAULT_JWT_FILE"))
	if err != nil {
		return "", err
	}
	login, err := client.Logical().Write("auth/"+os.Getenv("VAULT_AUTH_MOUNT")+"/login",
		map[string]any{"role": os.Getenv("VAULT_ROLE"), "jwt": string(jwt)})
	if err != nil {
		return "", err
	}
	if login == nil || login.Auth == nil {
		return "", fmt.Errorf("the login returned no token")
	}
	client.SetToken(login.Auth.ClientToken)
	secret, err := client.Logical().Read("secret/data/app")
	if err != nil {
		return "", err
	}
	data, _ := secret.Data["data"].(map[string]any)
	reader, _ := data["reader"].(string)
	return reader, nil
}

// exchange is one case of a token exchange with a service's fake: whose
// token (sa) for which audience the pod's file holds, and the refusal the
// service answers with ("" when it accepts).
type exchange struct {
	name, sa, audience, refusal string
}

// exchanges runs each case: the injected volume's token when it is the
// pod's own ServiceAccount's for the injected audience, else a token
// requested for the case; then the client, configured from the
// container's injected environment (and env), makes its call, which
// returns want when the service accepts.
func exchanges(t *testing.T, ns string, pod *corev1.Pod, volumeName, tokenFile, own, audience string, lifetime int64, env map[string]string,
	call func() (string, error), want string, cases []exchange) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			files := podFiles{t.TempDir()}
			if tt.sa == own && tt.audience == audience {
				projectToken(t, pod, volumeName, files)
			} else {
				writeToken(t, ns, tt.sa, tt.audience, ptr.To(lifetime), nil, tokenFile, files)
			}
			setContainerEnv(t, pod.Spec.Containers[0], files, env)
			got, err := call()
			switch {
			case tt.refusal == "" && (err != nil || got != want):
				t.Errorf("the client with the injected identity: %q, %v; want %q", got, err, want)
			case tt.refusal != "" && (err == nil || !strings.Contains(err.Error(), tt.refusal)):
				t.Errorf("error %v, want the service's refusal %q", err, tt.refusal)
			}
		})
	}
}
