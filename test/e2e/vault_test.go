package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
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
	c := stored.Spec.Containers[0]
	env := map[string]string{"VAULT_CACERT": fakes.Vault.CAFile}
	for _, tt := range []struct {
		name, sa, audience, refusal string
	}{
		{name: "the pod's own token logs in and reads the secret", sa: "reader", audience: "vault"},
		{name: "another serviceaccount's token is refused by the role's bound subject", sa: "intruder", audience: "vault", refusal: "sub claim does not match bound subject"},
		{name: "a token for another audience is refused by the role's bound audiences", sa: "reader", audience: "sts.amazonaws.com", refusal: "invalid audience"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files := podFiles{t.TempDir()}
			if tt.sa == "reader" && tt.audience == "vault" {
				projectToken(t, stored, "vault-token", files)
			} else {
				writeToken(t, ns, tt.sa, tt.audience, ptr.To[int64](600), nil, "/var/run/secrets/vault/token", files)
			}
			setContainerEnv(t, c, files, env)
			got, err := readVaultSecret()
			switch {
			case tt.refusal == "" && (err != nil || got != Subject(ns, "reader")):
				t.Errorf("vault/api with the injected identity: %q, %v", got, err)
			case tt.refusal != "" && (err == nil || !strings.Contains(err.Error(), tt.refusal)):
				t.Errorf("error %v, want the role's refusal %q", err, tt.refusal)
			}
		})
	}
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
