package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestOnlyTheAPIServerMayAskForReviews: the injector runs with
// --client-ca-file and --client-names, so a client without the API
// server's certificate (even one the same CA signed under another name)
// cannot ask it about any namespace's identities, while every other test
// in the suite shows that the API server, presenting the certificate its
// AdmissionConfiguration names, is served.
func TestOnlyTheAPIServerMayAskForReviews(t *testing.T) {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cluster.Injector.CAPEM)
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"kube-system","operation":"CREATE","object":{"spec":{"serviceAccountName":"default","containers":[{"name":"c"}]}}}}`
	post := func(certs []tls.Certificate) (int, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
		resp, err := c.Post("https://"+cluster.Injector.WebhookAddr+"/mutate", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer func() { _ = resp.Body.Close() }()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := post(nil); err == nil {
		t.Fatalf("a client without a certificate got HTTP %d", code)
	}
	pair, err := tls.LoadX509KeyPair(cluster.WebhookClient.CertFile, cluster.WebhookClient.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := post([]tls.Certificate{pair}); err != nil || code != http.StatusOK {
		t.Fatalf("with the API server's certificate: HTTP %d, %v", code, err)
	}
	// A certificate the same CA signed for another client (a node, a
	// user): refused by --client-names.
	c, k, err := cluster.WebhookClient.CA.IssueClient("system:node:worker-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := post([]tls.Certificate{other}); err == nil {
		t.Fatalf("a certificate of the same CA under another name got HTTP %d", code)
	}
}

// TestAnOutageIsServedFromTheCacheAndForgottenSoonAfter cuts the injector
// off from the API server (the API server itself keeps serving and still
// calls the webhook), re-annotates a ServiceAccount during the outage, and
// measures how long after the connection comes back pods get the new
// identity. client-go alone retries a broken watch with a backoff of up to
// a minute; the cache relists as soon as the API server answers.
func TestAnOutageIsServedFromTheCacheAndForgottenSoonAfter(t *testing.T) {
	ns := namespace(t, nil)
	const oldRole, newRole = "arn:aws:iam::111122223333:role/before", "arn:aws:iam::111122223333:role/after"
	serviceAccount(t, ns, "app", map[string]string{"eks.amazonaws.com/role-arn": oldRole})
	roleOf := func() string {
		t.Helper()
		p, err := createPod(t, ns, podSpec("probe-"+randomHex(3), "app"), true)
		if err != nil {
			t.Fatalf("pod creation failed: %v", err)
		}
		return envOf(p.Spec.Containers[0])["AWS_ROLE_ARN"]
	}
	waitFor := func(want string, within time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		for roleOf() != want {
			if time.Since(t0) > within {
				t.Fatalf("pods still do not get %s after %s", want, within)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(t0)
	}
	waitFor(oldRole, 10*time.Second)

	cluster.APIProxy.Cut()
	defer func() { _ = cluster.APIProxy.Restore() }()
	sa, err := cluster.Client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.Annotations["eks.amazonaws.com/role-arn"] = newRole
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Update(context.Background(), sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Long enough for client-go's reflector to back off for many seconds.
	time.Sleep(15 * time.Second)
	if got := roleOf(); got != oldRole {
		t.Errorf("during the outage pods got %q, want the cached %q", got, oldRole)
	}
	if code := getStatus(t, "http://"+cluster.Injector.MetricsAddr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz during the outage: HTTP %d; the injector keeps serving from its cache and must stay ready", code)
	}
	if age := cacheAge(t); age < 10 {
		t.Errorf("serviceaccount cache age during a 15 s outage = %.1f s", age)
	}

	if err := cluster.APIProxy.Restore(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(newRole, 20*time.Second)
	t.Logf("pods got the identity changed during the outage %s after the API server was reachable again", took.Round(100*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("stale for %s after the outage, want under 10 s", took)
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func cacheAge(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get("http://" + cluster.Injector.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "pod_identity_serviceaccount_cache_age_seconds "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("no pod_identity_serviceaccount_cache_age_seconds in /metrics")
	return 0
}
