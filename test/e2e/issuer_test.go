package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pod-identity/injector/internal/testpki"
)

// publicHost stands in for the static host that serves a self-managed
// cluster's issuer (an S3 bucket, a web server): TLS for the issuer's own
// host name, from a CA the injector binary is told to trust through
// SSL_CERT_FILE, on loopback. Each case sets what it serves.
type publicHost struct {
	addr   string
	caFile string
	mu     sync.Mutex
	docs   map[string][]byte // by path
	types  map[string]string // Content-Type by path
}

func startPublicHost(t *testing.T, host string) *publicHost {
	t.Helper()
	ca, err := testpki.NewCA("e2e-public-issuer-host")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(host, host)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	p := &publicHost{addr: l.Addr().String(), caFile: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(p.caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		doc, ok := p.docs[r.URL.Path]
		ct := p.types[r.URL.Path]
		p.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write(doc)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// serve sets what the host serves at each path, as JSON unless types says.
func (p *publicHost) serve(docs map[string][]byte, types map[string]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.docs, p.types = docs, map[string]string{}
	for path := range docs {
		p.types[path] = "application/json"
	}
	for path, ct := range types {
		p.types[path] = ct
	}
}

// TestIssuerCheckComparesThePublicCopyWithTheAPIServer: `injector issuer
// check` fetches the public issuer as the clouds do (a stand-in host
// here, reached through --connect-to with TLS for the issuer's name) and
// compares it with the real API server's documents and a token it signs
// now. Each way a public copy goes wrong gets its verdict and exit code.
func TestIssuerCheckComparesThePublicCopyWithTheAPIServer(t *testing.T) {
	ctx := context.Background()
	iss, err := url.Parse(cluster.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	host := startPublicHost(t, iss.Hostname())
	rest := cluster.Client.Discovery().RESTClient()
	discovery, err := rest.Get().AbsPath("/.well-known/openid-configuration").Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := rest.Get().AbsPath("/openid/v1/jwks").Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(discovery, &d); err != nil {
		t.Fatal(err)
	}
	jwksURL, err := url.Parse(d["jwks_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var published jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &published); err != nil || len(published.Keys) == 0 {
		t.Fatalf("the API server's JWKS %s: %v", jwks, err)
	}
	kid := published.Keys[0].KeyID
	old, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The copy made before the API server's key rotated: another key.
	stale, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &old.PublicKey, KeyID: "key-before-rotation", Algorithm: "RS256", Use: "sig"}}})
	slash := bytes.Replace(discovery, []byte(`"issuer":"`+cluster.Issuer+`"`), []byte(`"issuer":"`+cluster.Issuer+`/"`), 1)
	if bytes.Equal(slash, discovery) {
		t.Fatalf("the discovery document %s does not name the issuer as expected", discovery)
	}
	discoveryPath := iss.Path + "/.well-known/openid-configuration"
	connect := iss.Hostname() + ":443:" + host.addr
	closed := closedPort(t)
	ns := namespace(t, nil)
	serviceAccount(t, ns, "issuer-check", nil)

	for _, tt := range []struct {
		name      string
		docs      map[string][]byte
		types     map[string]string
		connectTo string
		code      int
		says      []string
	}{
		{"a copy of the API server's own documents passes", map[string][]byte{discoveryPath: discovery, jwksURL.Path: jwks}, nil, connect, 0,
			[]string{"ok          signing key", "a token the API server just signed (kid \"" + kid + "\") verifies", "ok          aws"}},
		{"an issuer with a trailing slash is refused", map[string][]byte{discoveryPath: slash, jwksURL.Path: jwks}, nil, connect, 2,
			[]string{"wrong       issuer", "differs from the cluster's " + cluster.Issuer + " only by a trailing slash", "wrong       aws"}},
		{"a JWKS copied before the key rotated is stale", map[string][]byte{discoveryPath: discovery, jwksURL.Path: stale}, nil, connect, 2,
			[]string{"wrong       signing key", "(kid \"" + kid + "\") is not published: the public JWKS is stale"}},
		{"a host that does not answer is unreachable", nil, nil, iss.Hostname() + ":443:" + closed, 3,
			[]string{"unreachable discovery", "connection refused"}},
		{"a JWKS served as text is refused", map[string][]byte{discoveryPath: discovery, jwksURL.Path: jwks}, map[string]string{jwksURL.Path: "text/plain; charset=utf-8"}, connect, 2,
			[]string{"wrong       jwks", `served as "text/plain; charset=utf-8": the clouds expect Content-Type application/json`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host.serve(tt.docs, tt.types)
			stdout, stderr, code := runIssuerCheck(t, host.caFile, "-n", ns, "--serviceaccount", "issuer-check", "--connect-to", tt.connectTo)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.says {
				if !strings.Contains(stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, stdout)
				}
			}
		})
	}
	t.Run("what injector issuer publish writes passes, served as it is", func(t *testing.T) {
		bin, err := cluster.binary()
		if err != nil {
			t.Fatal(err)
		}
		kubeconfig, err := cluster.Kubeconfig()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if out, err := exec.Command(bin, "issuer", "publish", dir, "--kubeconfig", kubeconfig).CombinedOutput(); err != nil {
			t.Fatalf("injector issuer publish: %v\n%s", err, out)
		}
		docs := map[string][]byte{}
		err = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			docs["/"+filepath.ToSlash(rel)], err = os.ReadFile(path)
			return err
		})
		if err != nil || len(docs) != 2 {
			t.Fatalf("published %v: %v", docs, err)
		}
		host.serve(docs, nil)
		if stdout, stderr, code := runIssuerCheck(t, host.caFile, "-n", ns, "--serviceaccount", "issuer-check", "--connect-to", connect); code != 0 {
			t.Errorf("exit code %d\n%s%s", code, stdout, stderr)
		}
	})
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// runIssuerCheck runs the built injector's `issuer check` against the
// cluster, trusting caFile for the public host.
func runIssuerCheck(t *testing.T, caFile string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	kubeconfig, err := cluster.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	return runBinary(t, []string{"SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + filepath.Dir(caFile)},
		append([]string{"issuer", "check", "--kubeconfig", kubeconfig, "--timeout", "5s"}, args...)...)
}

// runBinary runs the built injector with args and env added to the
// test's environment, and returns what it printed and its exit code.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := cluster.binary()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}
