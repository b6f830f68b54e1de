package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pod-identity/injector/internal/testpki"
)

// The suite's shared world: one cluster, one injector, the fakes.
var (
	cluster  *Cluster
	fakes    *Fakes
	webCA    *testpki.CA
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "pod-identity-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if os.Getenv("E2E_KEEP_DIR") == "" {
		defer func() { _ = os.RemoveAll(dir) }()
	} else {
		fmt.Fprintln(os.Stderr, "e2e: keeping", dir)
	}
	if fakes, err = StartFakes(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: fakes:", err)
		return 1
	}
	defer fakes.Close()
	if cluster, err = StartCluster(ctx, dir, root, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer cluster.Stop()
	fmt.Fprintf(os.Stderr, "e2e: etcd and kube-apiserver %s ready in %s\n", KubeVersion, time.Since(t0).Round(time.Millisecond))
	v, err := NewVerifier(ctx, cluster.Client)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fakes.SetVerifier(v)
	if webCA, err = testpki.NewCA("e2e-webhooks"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	certFile, keyFile, err := webCA.WriteServing(mkdir(dir, "injector-tls"), "pod-identity-injector")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := cluster.StartInjector(ctx, certFile, keyFile, webCA.PEM, injectorArgs()...); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := registerWebhooks(ctx, root); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: register webhooks:", err, "\n", cluster.InjectorLog())
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: injector serving and registered %s after start\n", time.Since(t0).Round(time.Millisecond))
	code := m.Run()
	if WrittenRules() && policyMode.sync != nil {
		// How full the suite's sets left the written policy (1 MiB).
		m, err := scrapeWith(policyMode.sync.MetricsAddr, "pod_identity_sync_written_policy_")
		fmt.Fprintf(os.Stderr, "e2e: sync's written policy at the end: %s %v\n", m, err)
	}
	if code == 0 {
		if err := serverLogsAreJSON(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: a server wrote a line that is not JSON (--log-format=json):", err)
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: injector log tail:\n%s\n", cluster.InjectorLog())
	}
	return code
}

// injectorArgs are the flags the suite runs the injector with: the fakes
// stand in for the clouds' endpoints.
func injectorArgs() []string {
	return append([]string{
		// Only the API server, with its AdmissionConfiguration's client
		// certificate, may send reviews.
		"--client-ca-file=" + cluster.WebhookClient.CAFile,
		// And only under its own name: the CA's other certificates are refused.
		"--client-names=kube-apiserver",
	}, providerArgs()...)
}

// providerArgs are the e2e injector's provider flags: the fakes' endpoints
// and deploy/providers' examples.
func providerArgs() []string {
	return []string{
		"--aws-default-region=us-west-2",
		"--azure-authority-host=" + fakes.Entra.Server.URL + "/",
		"--gcp-token-url=" + fakes.Google.URL + "/v1/token",
		"--gcp-iam-credentials-url=" + fakes.Google.URL,
		// deploy/providers' examples, as shipped.
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "alibaba-rrsa.yaml"),
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "oracle-oke.yaml"),
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "anthropic-claude.yaml"),
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "openai.yaml"),
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "vault.yaml"),
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "stackit.yaml"),
		"--provider-config=" + filepath.Join(repoRoot, "deploy", "providers", "databricks.yaml"),
	}
}

func mkdir(parent, name string) string {
	d := filepath.Join(parent, name)
	_ = os.MkdirAll(d, 0o700)
	return d
}
