// Package e2e runs pod-identity-injector against a real kube-apiserver (with
// etcd) on loopback ports, and turns what it injects into credentials with
// the clouds' own SDKs against local fakes of the clouds' token endpoints.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/pod-identity/injector/internal/testpki"
)

// KubeVersion is the kube-apiserver the suite builds and runs.
const KubeVersion = "v1.37.2"

// Cluster is etcd plus kube-apiserver on loopback, and the injector.
type Cluster struct {
	Dir string
	// sharedBinary, when set, is the injector binary to run (SameBinaryAs).
	sharedBinary string
	APIURL       string
	Token        string
	CAFile       string
	Issuer       string
	Config       *rest.Config
	Client       kubernetes.Interface
	procs        []*proc
	injector     *proc
	syncs        []*proc
	Injector     InjectorEndpoints
	// WebhookClient is the client certificate the API server presents to
	// webhooks (its AdmissionConfiguration), and the CA that signed it,
	// which the injector requires with --client-ca-file.
	WebhookClient WebhookClientCert
	// APIProxy stands between the injector and the API server, so a test
	// can cut the injector off while the API server keeps serving.
	APIProxy  *Proxy
	repoRoot  string
	logWriter io.Writer
}

// WebhookClientCert is the API server's client certificate for webhooks.
type WebhookClientCert struct {
	CAFile, CertFile, KeyFile string
	// CA signed it, and can sign other clients' certificates.
	CA *testpki.CA
}

// InjectorEndpoints are where the injector under test listens.
type InjectorEndpoints struct {
	WebhookAddr, MetricsAddr string
	CAPEM                    []byte
	CertFile, KeyFile        string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// FreePort returns a free loopback port for a server to listen on.
//
// It draws from below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), not from port 0: a port the
// kernel hands out for ":0" comes from the same range as the local ports of
// outgoing connections, so between this call and the server's listen an
// API server's connection to etcd could take it ("address already in use",
// seen once in a run). Ports handed out once in this process are not
// handed out again.
func FreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	low := ephemeralLow()
	for range 200 {
		port := 10000 + mrand.IntN(low-10000)
		if portsGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsGiven[port] = true
		return port, nil
	}
	return 0, errors.New("no free loopback port below the ephemeral range after 200 tries")
}

var (
	portMu     sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range, or 32768
// (Linux's default) when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 11000 {
		return 32768
	}
	return n
}

func (c *Cluster) start(name string, args []string, env []string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(c.Dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	// The children die with the test binary, whatever happens to it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = p.cmd.Wait(); _ = f.Close(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Tail returns the end of a process's log, for failure messages.
func (p *proc) Tail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// RepoRoot finds the repository root (the folder with the product's go.mod).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(data, []byte("module github.com/pod-identity/injector\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found above the working directory")
		}
		dir = parent
	}
}

// KubeAPIServer returns a kube-apiserver binary built from the Go module
// proxy, reusing the one in the user cache when its sources are unchanged.
func KubeAPIServer(repoRoot string, log io.Writer) (string, error) {
	src := filepath.Join(repoRoot, "test", "e2e", "kube-apiserver")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "pod-identity-injector", "kube-apiserver-"+KubeVersion+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	_, _ = fmt.Fprintf(log, "e2e: building kube-apiserver %s from the Go module proxy (about 9 minutes on 2 cores the first time)\n", KubeVersion)
	t0 := time.Now()
	tmp := bin + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build kube-apiserver: %w", err)
	}
	_, _ = fmt.Fprintf(log, "e2e: built kube-apiserver in %s\n", time.Since(t0).Round(time.Second))
	return bin, os.Rename(tmp, bin)
}

// StartCluster starts etcd and kube-apiserver in dir.
func StartCluster(ctx context.Context, dir, repoRoot string, log io.Writer) (*Cluster, error) {
	return startCluster(ctx, dir, repoRoot, log, true)
}

// StartBareCluster is StartCluster without the project's CRDs: a cluster
// where nothing of the injector's is installed yet.
func StartBareCluster(ctx context.Context, dir, repoRoot string, log io.Writer) (*Cluster, error) {
	return startCluster(ctx, dir, repoRoot, log, false)
}

func startCluster(ctx context.Context, dir, repoRoot string, log io.Writer, crds bool) (*Cluster, error) {
	c := &Cluster{Dir: dir, repoRoot: repoRoot, logWriter: log, Token: "e2e-admin-" + randomHex(8), Issuer: "https://issuer.e2e.pod-identity.test"}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return nil, errors.New("etcd is not installed: apt-get install -y etcd-server")
	}
	apiserver, err := KubeAPIServer(repoRoot, log)
	if err != nil {
		return nil, err
	}
	clientPort, err1 := FreePort()
	peerPort, err2 := FreePort()
	apiPort, err3 := FreePort()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	p, err := c.start("etcd", []string{etcd, "--name=e2e", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=e2e=" + peerURL, "--listen-metrics-urls=", "--log-level=warn"}, []string{"ETCD_UNSUPPORTED_ARCH=" + goarch()})
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	if err := waitHTTP(ctx, http.DefaultClient, etcdURL+"/health", 30*time.Second, p); err != nil {
		c.Stop()
		return nil, fmt.Errorf("etcd did not start: %w\n%s", err, p.Tail())
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		c.Stop()
		return nil, err
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	files := map[string][]byte{
		"sa.key":     privPEM,
		"sa.pub":     pubPEM,
		"tokens.csv": []byte(c.Token + ",e2e-admin,e2e-admin-uid,system:masters\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			c.Stop()
			return nil, err
		}
	}
	admissionConfig, err := c.writeAdmissionConfig(dir)
	if err != nil {
		c.Stop()
		return nil, err
	}
	certDir := filepath.Join(dir, "apiserver-certs")
	c.APIURL = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	p, err = c.start("kube-apiserver", []string{apiserver,
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir=" + certDir,
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--service-account-issuer=" + c.Issuer,
		// As a self-managed cluster with a public issuer sets it: the
		// discovery document then names the public host's JWKS, not the
		// API server's own address.
		"--service-account-jwks-uri=" + c.Issuer + "/openid/v1/jwks",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--enable-priority-and-fairness=false",
		"--admission-control-config-file=" + admissionConfig,
		// The built-in endpoint reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--v=1",
	}, nil)
	if err != nil {
		c.Stop()
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.CAFile = filepath.Join(certDir, "apiserver.crt")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(c.CAFile); err == nil {
			break
		}
		select {
		case <-p.done:
			c.Stop()
			return nil, fmt.Errorf("kube-apiserver exited\n%s", p.Tail())
		default:
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("kube-apiserver wrote no serving certificate\n%s", p.Tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.Config = &rest.Config{Host: c.APIURL, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile}, QPS: 100, Burst: 200}
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		c.Stop()
		return nil, err
	}
	if err := waitHTTPAuth(ctx, hc, c.APIURL+"/readyz", c.Token, time.Until(deadline), p); err != nil {
		c.Stop()
		return nil, fmt.Errorf("kube-apiserver did not become ready: %w\n%s", err, p.Tail())
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		c.Stop()
		return nil, err
	}
	if !crds {
		return c, nil
	}
	if err := c.InstallCRDs(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// InstallCRDs applies the CustomResourceDefinitions of deploy/manifests/crds
// and deploy/policy/crds, as `kubectl apply -k` of those bases would first,
// and waits until the API server serves them.
func (c *Cluster) InstallCRDs(ctx context.Context) error {
	files, _ := filepath.Glob(filepath.Join(c.repoRoot, "deploy", "manifests", "crds", "pod-identity.io_*.yaml"))
	policyFiles, _ := filepath.Glob(filepath.Join(c.repoRoot, "deploy", "policy", "crds", "pod-identity.io_*.yaml"))
	if len(files) == 0 || len(policyFiles) == 0 {
		return errors.New("deploy/manifests/crds or deploy/policy/crds holds no CRD")
	}
	files = append(files, policyFiles...)
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &u.Object); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := crds.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "e2e", Force: true}); err != nil {
			return fmt.Errorf("install %s: %w", filepath.Base(f), err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := crds.Get(ctx, u.GetName(), metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s never became established: %v", u.GetName(), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// writeAdmissionConfig writes the API server's AdmissionConfiguration: it
// presents a client certificate to every webhook (the kubeconfig user "*"),
// as the README tells cluster operators to do for --client-ca-file.
func (c *Cluster) writeAdmissionConfig(dir string) (string, error) {
	ca, err := testpki.NewCA("e2e-webhook-clients")
	if err != nil {
		return "", err
	}
	cert, key, err := ca.IssueClient("kube-apiserver")
	if err != nil {
		return "", err
	}
	c.WebhookClient = WebhookClientCert{CA: ca,
		CAFile: filepath.Join(dir, "webhook-client-ca.crt"), CertFile: filepath.Join(dir, "webhook-client.crt"), KeyFile: filepath.Join(dir, "webhook-client.key"),
	}
	kubeconfig := filepath.Join(dir, "webhook-admission-kubeconfig.yaml")
	config := filepath.Join(dir, "admission-configuration.yaml")
	files := map[string][]byte{
		c.WebhookClient.CAFile: ca.PEM, c.WebhookClient.CertFile: cert, c.WebhookClient.KeyFile: key,
		kubeconfig: fmt.Appendf(nil, `apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: %s
    client-key: %s
`, c.WebhookClient.CertFile, c.WebhookClient.KeyFile),
		config: fmt.Appendf(nil, `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %[1]s
`, kubeconfig),
	}
	for name, data := range files {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			return "", err
		}
	}
	return config, nil
}

// Kubeconfig writes a kubeconfig for the admin token and returns its path.
func (c *Cluster) Kubeconfig() (string, error) {
	return c.kubeconfigFor("kubeconfig", c.APIURL, c.Token)
}

// kubeconfigFor writes a kubeconfig named name in the cluster's folder
// for server, authenticating with token.
func (c *Cluster) kubeconfigFor(name, server, token string) (string, error) {
	path := filepath.Join(c.Dir, name)
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: e2e
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: e2e}
current-context: e2e
`, server, c.CAFile, token)
	return path, os.WriteFile(path, []byte(data), 0o600)
}

// binary builds the injector once per cluster directory, or returns the
// one SameBinaryAs gave.
func (c *Cluster) binary() (string, error) {
	if c.sharedBinary != "" {
		return c.sharedBinary, nil
	}
	bin := filepath.Join(c.Dir, "injector")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/injector")
		cmd.Dir = c.repoRoot
		cmd.Stdout, cmd.Stderr = c.logWriter, c.logWriter
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("build injector: %w", err)
		}
	}
	return bin, nil
}

// Sync is one running `injector sync`.
type Sync struct {
	// MetricsAddr serves its /metrics, /healthz and /readyz.
	MetricsAddr string
	p           *proc
}

// Stop stops it (SIGTERM: it gives up the lease as it goes).
func (s *Sync) Stop() { s.p.stop(10 * time.Second) }

// Log returns the end of its log.
func (s *Sync) Log() string { return s.p.Tail() }

// StartSync builds and starts `injector sync` out of cluster (policy
// mode), as its shipped ServiceAccount with its shipped RBAC (leader
// election in its own namespace), and returns it
// once it is ready. The cluster stops it at the end.
func (c *Cluster) StartSync(ctx context.Context, extraArgs ...string) (*Sync, error) {
	bin, err := c.binary()
	if err != nil {
		return nil, err
	}
	kubeconfig, err := c.syncKubeconfig(ctx)
	if err != nil {
		return nil, err
	}
	mp, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", mp)
	name := "sync-" + randomHex(4)
	args := append([]string{bin, "sync", "--kubeconfig=" + kubeconfig, "--metrics-address=" + addr,
		"--log-format=json", "--leader-election-namespace=" + SyncNamespace, "--leader-election-identity=" + name}, extraArgs...)
	p, err := c.start(name, args, nil)
	if err != nil {
		return nil, err
	}
	c.syncs = append(c.syncs, p)
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+addr+"/readyz", 30*time.Second, p); err != nil {
		return nil, fmt.Errorf("sync did not become ready: %w\n%s", err, p.Tail())
	}
	return &Sync{MetricsAddr: addr, p: p}, nil
}

// StartInjector builds and starts `injector serve` out of cluster.
func (c *Cluster) StartInjector(ctx context.Context, certFile, keyFile string, caPEM []byte, extraArgs ...string) error {
	bin, err := c.binary()
	if err != nil {
		return err
	}
	if c.APIProxy == nil {
		p, err := StartProxy(strings.TrimPrefix(c.APIURL, "https://"))
		if err != nil {
			return err
		}
		c.APIProxy = p
	}
	kubeconfig, err := c.kubeconfigFor("injector-kubeconfig", "https://"+c.APIProxy.Addr(), c.Token)
	if err != nil {
		return err
	}
	wp, err1 := FreePort()
	mp, err2 := FreePort()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	c.Injector = InjectorEndpoints{
		WebhookAddr: fmt.Sprintf("127.0.0.1:%d", wp), MetricsAddr: fmt.Sprintf("127.0.0.1:%d", mp),
		CAPEM: caPEM, CertFile: certFile, KeyFile: keyFile,
	}
	args := append([]string{bin, "serve",
		"--kubeconfig=" + kubeconfig,
		"--listen-address=" + c.Injector.WebhookAddr,
		"--metrics-address=" + c.Injector.MetricsAddr,
		"--tls-cert-file=" + certFile, "--tls-key-file=" + keyFile,
		"--log-format=json", "--shutdown-delay=0s",
	}, extraArgs...)
	p, err := c.start("injector", args, nil)
	if err != nil {
		return err
	}
	c.injector = p
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+c.Injector.MetricsAddr+"/readyz", 30*time.Second, p); err != nil {
		return fmt.Errorf("injector did not become ready: %w\n%s", err, p.Tail())
	}
	return nil
}

// StopInjector stops the injector (to see what the API server does without it).
func (c *Cluster) StopInjector() { c.injector.stop(10 * time.Second) }

// SameBinaryAs makes c run other's injector binary: one build per suite
// run, from the source as it was when the suite started.
func (c *Cluster) SameBinaryAs(other *Cluster) error {
	bin, err := other.binary()
	c.sharedBinary = bin
	return err
}

// ServerLogs returns the log files of every injector and sync the cluster
// started.
func (c *Cluster) ServerLogs() []string {
	var out []string
	for _, p := range append([]*proc{c.injector}, c.syncs...) {
		if p != nil {
			out = append(out, p.log)
		}
	}
	return out
}

// InjectorLog returns the end of the injector's log.
func (c *Cluster) InjectorLog() string {
	if c.injector == nil {
		return ""
	}
	return c.injector.Tail()
}

// Stop stops the injector, then kube-apiserver, then etcd: kube-apiserver
// ignores SIGTERM once etcd is gone, so the order matters, and each gets
// SIGKILL if it lingers.
func (c *Cluster) Stop() {
	c.injector.stop(10 * time.Second)
	for _, p := range c.syncs {
		p.stop(10 * time.Second)
	}
	if c.APIProxy != nil {
		c.APIProxy.Close()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(15 * time.Second)
	}
}

func waitHTTP(ctx context.Context, hc *http.Client, url string, d time.Duration, p *proc) error {
	return waitHTTPAuth(ctx, hc, url, "", d, p)
}

// waitHTTPAuth polls url until it answers 200, d passes, or p exits.
func waitHTTPAuth(ctx context.Context, hc *http.Client, url, token string, d time.Duration, p *proc) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: HTTP %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%s exited: %w", p.name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out: %w", last)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// InjectorMemory returns the injector process's resident and peak resident
// memory in KiB.
func (c *Cluster) InjectorMemory() (rss, peak int, err error) {
	if c.injector == nil {
		return 0, 0, errors.New("no injector running")
	}
	data, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(c.injector.cmd.Process.Pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		var v int
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &v); err == nil {
			rss = v
		}
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &v); err == nil {
			peak = v
		}
	}
	return rss, peak, nil
}
