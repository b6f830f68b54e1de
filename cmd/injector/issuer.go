package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/pod-identity/injector/internal/trust"
)

// The exit codes of injector issuer check.
const (
	exitIssuerWrong       = 2
	exitIssuerUnreachable = 3
)

func newIssuerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuer",
		Short: "Check and publish the cluster's public OIDC issuer",
	}
	cmd.AddCommand(newIssuerCheckCommand(), newIssuerPublishCommand())
	return cmd
}

func newIssuerCheckCommand() *cobra.Command {
	kube := newKubeOptions()
	var namespace, serviceAccount, output string
	var connectTo []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check [URL]",
		Short: "Check that the public issuer serves what the cluster signs with",
		Long: `Fetches the public issuer (URL, default the cluster's issuer) anonymously over
TLS, as AWS, Azure and Alibaba Cloud do, and compares it with the API server's
own /.well-known/openid-configuration and /openid/v1/jwks and with a token it
signs now (a TokenRequest for --serviceaccount): the issuer string byte for
byte (a trailing slash included), jwks_uri reachable and served as JSON, and
the current signing key published, which catches a copy left stale by a key
rotation or an external signer. It then says which clouds can use the issuer
as it is (Google Cloud also takes an uploaded JWKS).

Exit codes: 0 the public issuer serves what the cluster signs with; 2 it
disagrees with the cluster (the clouds will refuse the tokens); 3 it could not
be reached; 1 the check could not run (flags, the API server).

--connect-to HOST:PORT:HOST2:PORT2 (as curl's) fetches from HOST2:PORT2 what
is asked of HOST:PORT, TLS still verifying HOST: to check a new host before
DNS points at it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := publicClient(connectTo, timeout)
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			ci, err := clusterIssuer(ctx, kube, namespace, serviceAccount, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			url := ""
			if len(args) == 1 {
				url = args[0]
			}
			r, err := trust.CheckIssuer(ctx, client, *ci, url)
			if err != nil {
				return err
			}
			if err := writeIssuerReport(cmd.OutOrStdout(), r, output); err != nil {
				return err
			}
			switch r.Worst() {
			case trust.Unreachable:
				return &exitCodeError{code: exitIssuerUnreachable, err: fmt.Errorf("the public issuer %s could not be reached", r.URL)}
			case trust.Wrong:
				return &exitCodeError{code: exitIssuerWrong, err: fmt.Errorf("the public issuer %s disagrees with the cluster: the clouds that fetch it will refuse its tokens", r.URL)}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	kube.addFlags(fs)
	addNamespaceFlag(fs, &namespace, "", "namespace of --serviceaccount (default: the context's)")
	fs.StringVar(&serviceAccount, "serviceaccount", "default", "ServiceAccount to request a short-lived token for, to learn the current signing key")
	fs.StringArrayVar(&connectTo, "connect-to", nil, "HOST:PORT:HOST2:PORT2: fetch from HOST2:PORT2 what is asked of HOST:PORT (repeatable)")
	addTimeoutFlag(fs, &timeout, 10*time.Second, "each fetch from the public issuer")
	addOutputFlag(fs, &output, "text", "", "text", "json")
	return cmd
}

// publicClient is an anonymous HTTPS client with the system's roots, as
// the clouds fetch issuers, dialling as --connect-to says.
func publicClient(connectTo []string, timeout time.Duration) (*http.Client, error) {
	remap := map[string]string{}
	for _, c := range connectTo {
		parts := strings.Split(c, ":")
		if len(parts) != 4 || slices.Contains(parts, "") {
			return nil, fmt.Errorf("--connect-to %q: expected HOST:PORT:HOST2:PORT2", c)
		}
		remap[net.JoinHostPort(parts[0], parts[1])] = net.JoinHostPort(parts[2], parts[3])
	}
	dialer := &net.Dialer{Timeout: timeout}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: timeout,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := remap[addr]; ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{Transport: transport, Timeout: timeout}, nil
}

// clusterIssuer reads the API server's issuer documents and, when it may,
// a token it signs now.
func clusterIssuer(ctx context.Context, kube *kubeOptions, namespace, serviceAccount string, stderr io.Writer) (*trust.ClusterIssuer, error) {
	_, client, _, contextNS, err := kube.clients()
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = contextNS
	}
	get := func(path string) ([]byte, error) {
		b, err := client.Discovery().RESTClient().Get().AbsPath(path).Do(ctx).Raw()
		if err != nil {
			return nil, fmt.Errorf("the API server's %s: %w", path, err)
		}
		return b, nil
	}
	var ci trust.ClusterIssuer
	if ci.Discovery, err = get(trust.DiscoveryPath); err != nil {
		return nil, err
	}
	if ci.JWKS, err = get("/openid/v1/jwks"); err != nil {
		return nil, err
	}
	if serviceAccount != "" {
		ci.Token, err = requestToken(ctx, client, namespace, serviceAccount)
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "warning: no token to learn the current signing key (%v): comparing the key sets only\n", err)
		}
	}
	return &ci, nil
}

// requestToken asks for a ten-minute token (the shortest the API server
// issues) with an audience no cloud accepts.
func requestToken(ctx context.Context, client kubernetes.Interface, namespace, name string) (string, error) {
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{"pod-identity-injector-issuer-check"}, ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("serviceaccount %q token request: %w", namespace+"/"+name, err)
	}
	return tr.Status.Token, nil
}

func writeIssuerReport(w io.Writer, r *trust.IssuerReport, output string) error {
	if output == "json" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "issuer %s, public copy at %s\n", r.Issuer, r.URL)
	for _, v := range r.Verdicts {
		fmt.Fprintf(&b, "%-11s %-12s %s\n", v.Status, v.Check, v.Message)
	}
	b.WriteString("clouds:\n")
	for _, v := range r.Clouds {
		fmt.Fprintf(&b, "%-11s %-12s %s\n", v.Status, v.Check, v.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func newIssuerPublishCommand() *cobra.Command {
	kube := newKubeOptions()
	cmd := &cobra.Command{
		Use:   "publish DIR",
		Short: "Write the issuer's discovery document and JWKS for a static host",
		Long: `Writes the API server's own /.well-known/openid-configuration and JWKS under
DIR, at the paths the issuer URL and its jwks_uri name, ready to upload to any
static HTTPS host (an S3 bucket, a storage account, a web server) that serves
the issuer. Upload them with Content-Type application/json, and again after
every key rotation; injector issuer check says when the copy is stale.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			ci, err := clusterIssuer(ctx, kube, "", "", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			p, err := trust.Publish(*ci)
			if err != nil {
				return err
			}
			var paths []string
			for path := range p.Files {
				paths = append(paths, path)
			}
			slices.Sort(paths)
			for _, path := range paths {
				file := filepath.Join(args[0], filepath.FromSlash(strings.TrimPrefix(path, "/")))
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(file, p.Files[path], 0o644); err != nil {
					return err
				}
				_, _ = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (serve it at %s)\n", file, path)
			}
			for _, n := range p.Notes {
				_, _ = fmt.Fprintln(cmd.OutOrStdout(), "note:", n)
			}
			return nil
		},
	}
	kube.addFlags(cmd.Flags())
	return cmd
}
