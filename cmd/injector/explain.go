package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/spf13/cobra"

	"github.com/pod-identity/injector/internal/explain"
	"github.com/pod-identity/injector/pkg/manifest"
	"github.com/pod-identity/injector/pkg/mutate"
	"github.com/pod-identity/injector/pkg/providers/builtin"
	"github.com/pod-identity/injector/pkg/providers/registry"
	"github.com/pod-identity/injector/pkg/render"
)

func newExplainCommand(configs *registry.Configs) *cobra.Command {
	opts := render.Options{}
	provs := builtin.New().WithConfigs(configs)
	var excluded []string
	kube := newKubeOptions()
	cmd := &cobra.Command{
		Use:   "explain (-f FILE [KIND/NAME...] | KIND/NAME... [-n NAMESPACE])",
		Short: "Say, for each pod template of manifests, what each provider decides and why",
		Long: `Reads a YAML or JSON stream as mutate does and, for every pod template in it (or
those named as kind/name, e.g. deployment/web), prints the pod's ServiceAccount, why
the shipped webhook configuration would not send it to the injector (opt-out labels,
excluded namespaces, mirror pods), each provider's decision with the annotations it
read and its reasons (not set up, invalid, skipped, denied by an identity policy),
and what the pod would get. -o json prints the same for scripts.

Without -f it reads the cluster, with kubectl's configuration (--kubeconfig,
$KUBECONFIG, ~/.kube/config, else in-cluster; --context; get only): the named
pods or workloads of -n (default: the context's namespace), their
ServiceAccounts and namespace, the
IdentityPolicies and the webhook configuration; for a running pod it also says
where the identity it carries is not the one its ServiceAccount gives now.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			engine, err := buildEngine(ctx, provs, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if len(opts.Files) == 0 {
				if len(args) == 0 {
					return errors.New("name what to explain (pod/NAME, deployment/NAME, ...), in the cluster, or give -f FILE")
				}
				namespace := opts.Namespace
				if !cmd.Flags().Changed("namespace") {
					namespace = ""
				}
				return explainLive(ctx, engine, kube, namespace, args, opts.Output, cmd.OutOrStdout())
			}
			opts.Stdin = cmd.InOrStdin()
			return render.Explain(engine, opts, args, excluded, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	addFilenameFlag(fs, &opts.Files, "manifest file to explain")
	addServiceAccountsFlag(fs, &opts.ServiceAccountFiles, "the workloads run as")
	addNamespaceFlag(fs, &opts.Namespace, "default", "namespace of objects that name none (live: default the context's)")
	addOutputFlag(fs, &opts.Output, "text", "", "text", "json")
	fs.StringSliceVar(&excluded, "excluded-namespaces", []string{"kube-system", "pod-identity-system"}, "namespaces the webhook configuration never sends to the injector")
	kube.addFlags(fs)
	opts.AddPolicyFlags(fs)
	provs.AddFlags(fs)
	return cmd
}

// explainLive explains pods and workloads of the cluster, reading only.
// An empty namespace is the context's.
func explainLive(ctx context.Context, engine *mutate.Engine, kube *kubeOptions, namespace string, targets []string, output string, out io.Writer) error {
	_, client, dyn, contextNS, err := kube.clients()
	if err != nil {
		return err
	}
	if namespace == "" {
		namespace = contextNS
	}
	store, err := livePolicies(ctx, dyn)
	if err != nil {
		return err
	}
	var nsLabels map[string]string
	if ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{}); err == nil {
		nsLabels = ns.Labels
		store.SetNamespace(namespace, ns.Labels)
	}
	excluded := []string{"kube-system", "pod-identity-system"}
	if mwc, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "pod-identity-injector", metav1.GetOptions{}); err == nil && len(mwc.Webhooks) > 0 {
		if sel := mwc.Webhooks[0].NamespaceSelector; sel != nil {
			for _, e := range sel.MatchExpressions {
				if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpNotIn {
					excluded = e.Values
				}
			}
		}
	}
	var reports []explain.Report
	for _, target := range targets {
		kind, name, ok := strings.Cut(target, "/")
		if !ok {
			return fmt.Errorf("%s: expected KIND/NAME, e.g. deployment/web", target)
		}
		if k := strings.ToLower(kind); k == "serviceaccount" || k == "sa" {
			sa, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("serviceaccount %s/%s: %w", namespace, name, err)
			}
			reports = append(reports, explain.ExplainServiceAccount(engine, explain.ServiceAccountInput{ServiceAccount: sa, Policy: store.Scope(namespace)}))
			continue
		}
		obj, kindName, err := getWorkload(ctx, dyn, strings.ToLower(kind), namespace, name)
		if err != nil {
			return err
		}
		tp, err := manifest.ReadTemplate(obj, namespace)
		if err != nil || tp == nil {
			return fmt.Errorf("%s: %v", target, err)
		}
		sa, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, tp.ServiceAccount, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			sa, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("serviceaccount %s/%s: %w", namespace, tp.ServiceAccount, err)
		}
		t := tp.Target()
		t.Policy = store.Scope(namespace)
		reports = append(reports, explain.Explain(engine, explain.Input{Kind: kindName, Target: t, ServiceAccount: sa,
			ServiceAccountName: tp.ServiceAccount, NamespaceLabels: nsLabels, ExcludedNamespaces: excluded, Running: kindName == "Pod"}))
	}
	return render.WriteReports(out, reports, output)
}

// workloads are the kinds explain reads, by every name kubectl takes.
var workloads = map[string]schema.GroupVersionResource{}

func init() {
	for _, w := range []struct {
		gvr   schema.GroupVersionResource
		names []string
	}{
		{corev1.SchemeGroupVersion.WithResource("pods"), []string{"pod", "pods", "po"}},
		{appsv1.SchemeGroupVersion.WithResource("deployments"), []string{"deployment", "deployments", "deploy"}},
		{appsv1.SchemeGroupVersion.WithResource("statefulsets"), []string{"statefulset", "statefulsets", "sts"}},
		{appsv1.SchemeGroupVersion.WithResource("daemonsets"), []string{"daemonset", "daemonsets", "ds"}},
		{appsv1.SchemeGroupVersion.WithResource("replicasets"), []string{"replicaset", "replicasets", "rs"}},
		{batchv1.SchemeGroupVersion.WithResource("jobs"), []string{"job", "jobs"}},
		{batchv1.SchemeGroupVersion.WithResource("cronjobs"), []string{"cronjob", "cronjobs", "cj"}},
	} {
		for _, n := range w.names {
			workloads[n] = w.gvr
		}
	}
}

// getWorkload reads a pod or a workload by kind (or its short name), as
// manifests hold it, and returns it with its kind.
func getWorkload(ctx context.Context, dyn dynamic.Interface, kind, ns, name string) (map[string]any, string, error) {
	gvr, ok := workloads[kind]
	if !ok {
		return nil, "", fmt.Errorf("%s/%s: expected a pod, a workload (deployment, statefulset, daemonset, replicaset, job, cronjob) or a serviceaccount", kind, name)
	}
	u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
	}
	return u.Object, u.GetKind(), nil
}
