package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pod-identity/injector/internal/explain"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
)

// auditPageSize is how many pods one list call returns: the audit keeps
// one page and what it found, so its memory does not grow with the cluster.
const auditPageSize = 500

func newAuditCommand(configs *registry.Configs) *cobra.Command {
	provs := builtin.New().WithConfigs(configs)
	var namespace string
	kube := newKubeOptions()
	cmd := &cobra.Command{
		Use:   "audit [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]",
		Short: "List running pods whose cloud identity is not the one their ServiceAccount gives now",
		Long: `Pages through the running pods of a namespace (or all, by default) and lists those
whose injected identity differs from what their ServiceAccount's annotations give
now (changed, or never applied because the pod is older than the annotation),
grouped by the workload that owns them, with the command that restarts it. A
changed annotation never reaches running pods. Exits non-zero when it finds any,
for CI and cron jobs. Reads only (get, list), with kubectl's configuration
(--kubeconfig, $KUBECONFIG, ~/.kube/config, else in-cluster; --context).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			engine, err := buildEngine(ctx, provs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			_, client, _, _, err := kube.clients()
			if err != nil {
				return err
			}
			cmd.SilenceUsage = true
			return audit(ctx, engine, client, namespace, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	kube.addFlags(fs)
	addNamespaceFlag(fs, &namespace, metav1.NamespaceAll, "namespace to audit (default: all)")
	provs.AddFlags(fs)
	return cmd
}

// audit lists the pods whose identity drifted, by owning workload.
func audit(ctx context.Context, engine *mutate.Engine, client kubernetes.Interface, namespace string, out io.Writer) error {
	sas := map[string]*corev1.ServiceAccount{}
	owners := map[string]string{}
	found := map[string][]string{} // workload command -> lines
	pods, stale := 0, 0
	opts := metav1.ListOptions{Limit: auditPageSize}
	for {
		page, err := client.CoreV1().Pods(namespace).List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list pods: %w", err)
		}
		for i := range page.Items {
			p := &page.Items[i]
			pods++
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			saName := p.Spec.ServiceAccountName
			if saName == "" {
				saName = "default"
			}
			key := p.Namespace + "/" + saName
			sa, ok := sas[key]
			if !ok {
				sa, err = client.CoreV1().ServiceAccounts(p.Namespace).Get(ctx, saName, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					sa, err = nil, nil
				}
				if err != nil {
					return fmt.Errorf("serviceaccount %s: %w", key, err)
				}
				sas[key] = sa
			}
			if sa == nil {
				continue
			}
			r := explain.Explain(engine, explain.Input{Kind: "Pod", ServiceAccount: sa, ServiceAccountName: saName, Running: true,
				Target: mutate.Target{Namespace: p.Namespace, Name: p.Name, Meta: &p.ObjectMeta, Spec: &p.Spec}})
			if len(r.Drift) == 0 {
				continue
			}
			stale++
			w, err := owner(ctx, client, p, owners)
			if err != nil {
				return err
			}
			for _, d := range r.Drift {
				found[w] = append(found[w], fmt.Sprintf("pod %s: %s", p.Name, d))
			}
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	ws := make([]string, 0, len(found))
	for w := range found {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	for _, w := range ws {
		_, _ = fmt.Fprintln(out, w)
		for _, l := range found[w] {
			_, _ = fmt.Fprintln(out, "  "+l)
		}
	}
	if stale > 0 {
		return fmt.Errorf("%d of %d pods carry an identity their serviceaccount no longer gives", stale, pods)
	}
	_, _ = fmt.Fprintf(out, "%d pods: every one carries the identity its serviceaccount gives\n", pods)
	return nil
}

// owner returns the command that restarts the workload owning a pod (a
// Deployment through its ReplicaSet, a StatefulSet, a DaemonSet), or says
// the pod must be recreated; ReplicaSet owners are remembered in cache.
func owner(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, cache map[string]string) (string, error) {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return fmt.Sprintf("pod %s/%s (no controller: delete and recreate it)", p.Namespace, p.Name), nil
	}
	kind, name := ref.Kind, ref.Name
	if kind == "ReplicaSet" {
		key := p.Namespace + "/" + name
		if d, ok := cache[key]; ok {
			kind, name = "Deployment", d
			if d == "" {
				kind, name = "ReplicaSet", ref.Name
			}
		} else {
			rs, err := c.AppsV1().ReplicaSets(p.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return "", fmt.Errorf("replicaset %s: %w", key, err)
			}
			cache[key] = ""
			if rs != nil {
				if d := metav1.GetControllerOf(rs); d != nil && d.Kind == "Deployment" {
					cache[key], kind, name = d.Name, "Deployment", d.Name
				}
			}
		}
	}
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		return fmt.Sprintf("kubectl -n %s rollout restart %s/%s", p.Namespace, strings.ToLower(kind), name), nil
	}
	return fmt.Sprintf("%s %s/%s (its pods take the identity when it creates them again)", strings.ToLower(kind), p.Namespace, name), nil
}
