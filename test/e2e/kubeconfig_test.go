package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// TestClientCommandsLoadConfigurationAsKubectlDoes: explain, audit and
// trust, with no --kubeconfig, find the cluster as kubectl would: from
// $HOME/.kube/config, from $KUBECONFIG, and from the context --context
// names; the context's namespace is the default one. The kubeconfig's
// current context is a broken one wherever --context is the point.
func TestClientCommandsLoadConfigurationAsKubectlDoes(t *testing.T) {
	ns := namespace(t, nil)
	serviceAccount(t, ns, "reader", awsAnnotations())
	p := storedPod(t, ns, podSpec("web", "reader"))
	admin, err := cluster.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	good := cfg.CurrentContext
	cfg.Contexts[good].Namespace = ns
	// A context whose API server does not answer.
	broken := cfg.Contexts[good].DeepCopy()
	cfg.Clusters["nowhere"] = cfg.Clusters[cfg.Contexts[good].Cluster].DeepCopy()
	cfg.Clusters["nowhere"].Server = "https://" + closedPort(t)
	broken.Cluster = "nowhere"
	cfg.Contexts["broken"] = broken
	write := func(current, path string) string {
		cfg.CurrentContext = current
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	home := t.TempDir()
	write(good, filepath.Join(home, ".kube", "config"))
	elsewhere := write("broken", filepath.Join(t.TempDir(), "kubeconfig"))

	commands := [][]string{
		{"explain", "pod/" + p.Name},
		{"audit", "-n", ns},
		{"trust", "reader", "-o", "commands"},
	}
	says := []string{`pod "` + ns + "/" + p.Name + `" runs as serviceaccount "` + ns + `/reader"`, "", "system:serviceaccount:" + ns + ":reader"}
	for _, tt := range []struct {
		name  string
		env   []string
		flags []string
		fails bool
	}{
		{"from $HOME/.kube/config", []string{"HOME=" + home}, nil, false},
		{"from $KUBECONFIG, whose current context is broken", []string{"HOME=" + t.TempDir(), "KUBECONFIG=" + elsewhere}, nil, true},
		{"from $KUBECONFIG with --context", []string{"HOME=" + t.TempDir(), "KUBECONFIG=" + elsewhere}, []string{"--context", good}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i, c := range commands {
				cmd := exec.Command(filepath.Join(cluster.Dir, "injector"), append(c, tt.flags...)...)
				cmd.Env = append(withoutKubeEnv(), tt.env...)
				out, err := cmd.CombinedOutput()
				if tt.fails {
					if err == nil || !strings.Contains(string(out), "connection refused") {
						t.Errorf("%s through the broken context: %v\n%s", c[0], err, out)
					}
					continue
				}
				if err != nil || !strings.Contains(string(out), says[i]) {
					t.Errorf("%s: %v\n%s", c[0], err, out)
				}
			}
		})
	}
}

// withoutKubeEnv is the environment without KUBECONFIG and HOME, which
// each case sets.
func withoutKubeEnv() []string {
	var out []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "KUBECONFIG=") && !strings.HasPrefix(e, "HOME=") {
			out = append(out, e)
		}
	}
	return out
}
