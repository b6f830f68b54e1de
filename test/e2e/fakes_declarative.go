package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// AlibabaAudience is the audience Alibaba Cloud's STS accepts for RRSA.
const AlibabaAudience = "sts.aliyuncs.com"

// FakeAlibabaSTS is Alibaba Cloud STS's AssumeRoleWithOIDC: a RAM role may
// be assumed through the cluster's OIDC provider by the ServiceAccount its
// trust policy names, with the audience sts.aliyuncs.com.
type FakeAlibabaSTS struct {
	// Server serves HTTPS; the SDK sends STS requests over HTTPS only.
	Server   *httptest.Server
	provider string // the OIDC provider ARN the fake stands for
	verifier *Verifier
	mu       sync.Mutex
	trust    map[string]string // role ARN -> subject
	policies map[string]ramPolicy
}

// ramPolicy is a RAM role trust policy, as far as RRSA reads it.
type ramPolicy struct {
	Statement []struct {
		Effect    string
		Action    any
		Principal struct{ Federated any }
		Condition map[string]map[string]any
	}
}

// TrustPolicy sets role's trust policy (JSON, as `injector trust` prints
// it): RAM then lets a token assume the role when a statement allows
// sts:AssumeRole to this OIDC provider and every StringEquals condition on
// oidc:iss, oidc:aud and oidc:sub holds for the token's claims.
func (f *FakeAlibabaSTS) TrustPolicy(role string, doc []byte) error {
	var p ramPolicy
	if err := json.Unmarshal(doc, &p); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.policies == nil {
		f.policies = map[string]ramPolicy{}
	}
	f.policies[role] = p
	return nil
}

// allows evaluates p for a token's claims.
func (p ramPolicy) allows(provider string, c *Claims) bool {
	list := func(v any) []string {
		switch x := v.(type) {
		case string:
			return []string{x}
		case []any:
			var out []string
			for _, e := range x {
				s, _ := e.(string)
				out = append(out, s)
			}
			return out
		}
		return nil
	}
	claim := map[string]string{"oidc:iss": c.Issuer, "oidc:sub": c.Subject}
	for _, st := range p.Statement {
		if st.Effect != "Allow" || !slices.Contains(list(st.Action), "sts:AssumeRole") || !slices.Contains(list(st.Principal.Federated), provider) {
			continue
		}
		holds := len(st.Condition["StringEquals"]) > 0
		for op, conds := range st.Condition {
			for key, want := range conds {
				var have []string
				if key == "oidc:aud" {
					have = c.Audience
				} else if v, ok := claim[key]; ok {
					have = []string{v}
				}
				if op != "StringEquals" || !slices.ContainsFunc(have, func(h string) bool { return slices.Contains(list(want), h) }) {
					holds = false
				}
			}
		}
		if holds {
			return true
		}
	}
	return false
}

// Trust lets subject assume role.
func (f *FakeAlibabaSTS) Trust(role, subject string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trust[role] = subject
}

// Host is the fake's host:port, the SDK's STS endpoint.
func (f *FakeAlibabaSTS) Host() string { return strings.TrimPrefix(f.Server.URL, "https://") }

// AlibabaAccessKeyFor is the access key the fake issues to a subject for a role.
func AlibabaAccessKeyFor(role, subject string) string {
	return "STS." + AccessKeyFor(role, subject)[4:]
}

func (f *FakeAlibabaSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		writeJSON(w, status, map[string]string{"Code": code, "Message": msg, "RequestId": randomHex(8)})
	}
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRoleWithOIDC" {
		fail(http.StatusBadRequest, "InvalidAction.NotFound", "expected AssumeRoleWithOIDC")
		return
	}
	if got := r.PostForm.Get("OIDCProviderArn"); got != f.provider {
		fail(http.StatusNotFound, "EntityNotExist.OIDCProvider", fmt.Sprintf("the OIDC provider %s does not exist (this fake is %s)", got, f.provider))
		return
	}
	role := r.PostForm.Get("RoleArn")
	claims, err := f.verifier.Verify(r.PostForm.Get("OIDCToken"), AlibabaAudience)
	if err != nil {
		fail(http.StatusBadRequest, "AuthenticationFail.OIDCToken.Invalid", err.Error())
		return
	}
	f.mu.Lock()
	allowed, ok := f.trust[role]
	policy, hasPolicy := f.policies[role]
	f.mu.Unlock()
	if hasPolicy {
		ok, allowed = policy.allows(f.provider, claims), claims.Subject
	}
	if !ok || allowed != claims.Subject {
		fail(http.StatusForbidden, "NoPermission", fmt.Sprintf("%s may not assume %s", claims.Subject, role))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"RequestId": randomHex(8),
		"Credentials": map[string]string{
			"AccessKeyId": AlibabaAccessKeyFor(role, claims.Subject), "AccessKeySecret": "secret-" + randomHex(8),
			"SecurityToken": "token-" + randomHex(16), "Expiration": time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z"),
		},
		"AssumedRoleUser": map[string]string{"Arn": role + "/" + r.PostForm.Get("RoleSessionName")},
	})
}

// FakeOKE is OKE's workload identity token exchange (the proxymux the
// OCI SDKs reach at https://$KUBERNETES_SERVICE_HOST:12250): it verifies
// the pod's ServiceAccount token and answers with a resource principal
// session token for the workload (cluster, namespace, ServiceAccount).
type FakeOKE struct {
	// Host is the loopback address it listens on, at port 12250 (the SDKs'
	// fixed port); a random address of 127.0.0.0/8 keeps runs apart.
	Host string
	// CAFile is its certificate, which the SDKs read as the cluster CA.
	CAPEM    []byte
	Audience string
	verifier *Verifier
	srv      *http.Server
}

// okePort is the port the OCI SDKs send workload identity exchanges to.
const okePort = "12250"

// OKEPrincipal is the "sub" of the session token the fake issues to a
// ServiceAccount token's subject.
func OKEPrincipal(subject string) string { return "workload:" + subject }

func startFakeOKE(audience string) (*FakeOKE, error) {
	var l net.Listener
	var host string
	var err error
	for range 20 {
		host = fmt.Sprintf("127.%d.%d.%d", 1+mrand.IntN(254), mrand.IntN(256), 1+mrand.IntN(254))
		if l, err = net.Listen("tcp", net.JoinHostPort(host, okePort)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("no loopback address with port %s free: %w", okePort, err)
	}
	certPEM, cert, err := selfSigned(host)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	f := &FakeOKE{Host: host, CAPEM: certPEM, Audience: audience}
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = f.srv.ServeTLS(l, "", "") }()
	return f, nil
}

func (f *FakeOKE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/resourcePrincipalSessionTokens" {
		http.NotFound(w, r)
		return
	}
	var body struct {
		PodKey string `json:"podKey"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !strings.Contains(body.PodKey, "PUBLIC KEY") {
		http.Error(w, "expected {\"podKey\": <PEM public key>}", http.StatusBadRequest)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "no bearer token", http.StatusUnauthorized)
		return
	}
	claims, err := f.verifier.Verify(token, f.Audience)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	// The session token's signature is OCI's business: the SDK reads
	// only its claims (exp decides when to renew).
	enc := base64.RawURLEncoding.EncodeToString
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	payload, _ := json.Marshal(map[string]any{"sub": OKEPrincipal(claims.Subject), "ptype": "workload",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	rpst := enc(head) + "." + enc(payload) + "." + enc([]byte("signature"))
	inner, _ := json.Marshal(map[string]string{"token": "ST$" + rpst})
	w.Header().Set("Content-Type", "application/json")
	// The exchange answers a JSON string, the base64 of {"token":"ST$<jwt>"},
	// with nothing after it: the SDK strips the first and last byte.
	answer, _ := json.Marshal(base64.StdEncoding.EncodeToString(inner))
	_, _ = w.Write(answer)
}

// selfSigned makes a certificate for a loopback address that is its own CA.
func selfSigned(ip string) ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "fake-oke-proxymux"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
