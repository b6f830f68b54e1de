// Command apibench measures admission where users feel it: pod creation at
// the API server. It starts the e2e harness's etcd and kube-apiserver and
// the injector, and for each admission setup in turn POSTs a realistic pod
// with dryRun=All (so admission runs in full and nothing is stored) from
// -concurrency workers, in -rounds interleaved rounds of -duration, and
// reports pods/s, p50 and p99 per setup and the ratio of each to "no
// injection" (the median over rounds):
//
//	make apibench    (cd test/e2e && go run ./apibench)
//
// Setups: no webhook; the shipped webhook (one call per pod); the shipped
// webhook plus a validating webhook for pods, as versions before one-call
// admission registered (two calls per pod); policy mode: the admission
// policies of deploy/policy, from the parameters `injector sync` writes,
// as shipped, without the warnings policy, with an ApplyConfiguration for
// the containers, and the mutating policy alone; and a policy that does
// nothing, the floor of any MutatingAdmissionPolicy.
//
// -setups selects setups by name; -profile NAME writes the API server's
// CPU profile while that setup is measured; -no-identity sends a pod whose
// ServiceAccount has no identity, as most pods of a cluster are.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/pod-identity/injector/internal/parameters"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/internal/testpki"
	"github.com/pod-identity/injector/pkg/parameters/v1alpha1"
	"github.com/pod-identity/injector/test/e2e"
)

func main() {
	concurrency := flag.Int("concurrency", 16, "pod creations in flight")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	duration := flag.Duration("duration", 8*time.Second, "measured time per setup per round")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each measurement")
	flag.StringVar(&only, "setups", "", "measure only the setups whose names this string contains (and no injection)")
	flag.StringVar(&profile, "profile", "", "write the API server's CPU profile while the setup of this name is measured")
	flag.StringVar(&profileFile, "profile-file", "apiserver.pprof", "where -profile writes")
	flag.BoolVar(&plain, "no-identity", false, "POST the pod with a ServiceAccount that has no identity (and no Azure label): what most pods of a cluster cost")
	flag.Parse()
	if err := run(*concurrency, *rounds, *duration, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
}

// Flags that select what is measured and profiled.
var (
	only, profile, profileFile string
	plain                      bool
)

// loadPod is the pod the load sends: the realistic pod, or with
// -no-identity the same pod running as a ServiceAccount without identity.
func loadPod() *corev1.Pod {
	p := pod()
	if plain {
		p.Spec.ServiceAccountName = "plain"
		delete(p.Labels, "azure.workload.identity/use")
	}
	return p
}

type setup struct {
	name  string
	apply func(ctx context.Context) error
}

type result struct {
	pods      int
	seconds   float64
	latencies []time.Duration
	errors    int
}

func (r result) rate() float64 { return float64(r.pods) / r.seconds }

func (r result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	return l[int(p*float64(len(l)-1))]
}

func run(concurrency, rounds int, duration, warmup time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	root, err := e2e.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pod-identity-apibench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cluster, err := e2e.StartCluster(ctx, dir, root, os.Stderr)
	if err != nil {
		return err
	}
	defer cluster.Stop()
	ca, err := testpki.NewCA("apibench-webhooks")
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(dir, "injector-tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return err
	}
	certFile, keyFile, err := ca.WriteServing(tlsDir, "pod-identity-injector")
	if err != nil {
		return err
	}
	if err := cluster.StartInjector(ctx, certFile, keyFile, ca.PEM, "--client-ca-file="+cluster.WebhookClient.CAFile, "--log-level=warning"); err != nil {
		return err
	}
	url := "https://" + cluster.Injector.WebhookAddr
	hooks, err := e2e.ShippedWebhooks(root, url, ca.PEM)
	if err != nil {
		return err
	}
	mut := hooks.Pods
	// The validating webhook of versions before one-call admission: the
	// same selectors, on /validate.
	val := &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "pod-identity-injector"}}
	m := mut.Webhooks[0]
	vurl := url + "/validate"
	val.Webhooks = []admissionregv1.ValidatingWebhook{{
		Name: "validate.pod-identity.io", AdmissionReviewVersions: m.AdmissionReviewVersions,
		ClientConfig: admissionregv1.WebhookClientConfig{URL: &vurl, CABundle: ca.PEM}, Rules: m.Rules,
		FailurePolicy: m.FailurePolicy, MatchPolicy: m.MatchPolicy, SideEffects: m.SideEffects, TimeoutSeconds: m.TimeoutSeconds,
		ObjectSelector: m.ObjectSelector, NamespaceSelector: m.NamespaceSelector,
	}}

	client := cluster.Client
	cfg := *cluster.Config
	cfg.QPS, cfg.Burst = 1e6, 1e6
	fast, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		return err
	}
	const ns = "apibench"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: testenv.APIBenchServiceAccount, Annotations: testenv.APIBenchAnnotations()}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Policy mode: `injector sync` writes the namespace's parameters; the
	// shipped admission policies read them.
	if _, err := cluster.StartSync(ctx, "--log-level=warning"); err != nil {
		return err
	}
	policies, err := e2e.AdmissionPolicies(root, nil)
	if err != nil {
		return err
	}
	if _, err := cluster.WaitForParameters(ctx, ns, "app", 30*time.Second); err != nil {
		return err
	}
	ar := client.AdmissionregistrationV1()
	floor := emptyPolicy()
	var constant, bookkeeping []*unstructured.Unstructured
	deleteAll := func(ctx context.Context) {
		_ = cluster.DeleteAdmissionPolicies(ctx, constant)
		_ = cluster.DeleteAdmissionPolicies(ctx, bookkeeping)
		_ = ar.MutatingWebhookConfigurations().Delete(ctx, mut.Name, metav1.DeleteOptions{})
		_ = ar.ValidatingWebhookConfigurations().Delete(ctx, val.Name, metav1.DeleteOptions{})
		_ = ar.ValidatingWebhookConfigurations().Delete(ctx, hooks.Enforce.Name, metav1.DeleteOptions{})
		_ = cluster.DeleteAdmissionPolicies(ctx, policies)
		_ = cluster.DeleteAdmissionPolicies(ctx, floor)
		for _, p := range []string{"", "crd", "configmap"} {
			_ = cluster.DeleteAdmissionPolicies(ctx, floorPolicies(p, false))
		}
	}
	applyPolicies := func(objs []*unstructured.Unstructured) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			deleteAll(ctx)
			if err := cluster.ApplyAdmissionPolicies(ctx, objs); err != nil {
				return err
			}
			return waitInjected(ctx, fast, ns, true)
		}
	}
	// The floors' ConfigMap: the namespace's parameters as sync wrote
	// them, a key per ServiceAccount, so that the API server holds the same
	// content typed.
	if err := copyParametersToConfigMap(ctx, cluster, ns); err != nil {
		return err
	}
	folded, err := foldedTemplates(ctx, cluster, ns, policies)
	if err != nil {
		return err
	}
	inline, err := inlineInjections(ctx, cluster, ns, policies)
	if err != nil {
		return err
	}
	typed, err := serviceAccountParameters(ctx, cluster, ns, folded)
	if err != nil {
		return err
	}
	syncWritten, err := syncWrittenPolicy(ctx, cluster, ns, policies)
	if err != nil {
		return err
	}
	// The pod as admitted without injection and with the shipped
	// policies, for the constant patch's floor.
	deleteAll(ctx)
	plainPod, err := fast.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return err
	}
	if err := applyPolicies(policies)(ctx); err != nil {
		return err
	}
	injectedPod, err := fast.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return err
	}
	constant = constantPatchFloor(plainPod, injectedPod)
	if bookkeeping, err = bookkeepingFloor(constant, plainPod, injectedPod); err != nil {
		return err
	}
	applyFloor := func(objs []*unstructured.Unstructured) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			deleteAll(ctx)
			if err := cluster.ApplyAdmissionPolicies(ctx, objs); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
			return nil
		}
	}
	// A prototype must give the pod what the shipped policies give it
	// (its mark aside, which names other parameters).
	mark := regexp.MustCompile(`"pod-identity.io/policy-checked-containers":"[^"]*",?`)
	applySame := func(objs []*unstructured.Unstructured) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if err := applyPolicies(objs)(ctx); err != nil {
				return err
			}
			want := mark.ReplaceAllString(admitted(injectedPod), "")
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				got, err := fast.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					return err
				}
				if mark.ReplaceAllString(admitted(got), "") == want {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the prototype gives the pod %s, the shipped policies %s", admitted(got), admitted(injectedPod))
				}
			}
		}
	}
	setups := []setup{
		{"no injection", func(ctx context.Context) error { deleteAll(ctx); return waitInjected(ctx, fast, ns, false) }},
		{"webhook, one call (before enforcement)", func(ctx context.Context) error {
			deleteAll(ctx)
			if _, err := ar.MutatingWebhookConfigurations().Create(ctx, mut.DeepCopy(), metav1.CreateOptions{}); err != nil {
				return err
			}
			return waitInjected(ctx, fast, ns, true)
		}},
		// The shipped webhooks for pods: the mutating call and the
		// enforcement call after it (this namespace has no policy, so
		// the second call is answered at once: its floor).
		{"webhook and enforcement (shipped)", func(ctx context.Context) error {
			deleteAll(ctx)
			if _, err := ar.MutatingWebhookConfigurations().Create(ctx, mut.DeepCopy(), metav1.CreateOptions{}); err != nil {
				return err
			}
			if _, err := ar.ValidatingWebhookConfigurations().Create(ctx, hooks.Enforce.DeepCopy(), metav1.CreateOptions{}); err != nil {
				return err
			}
			return waitInjected(ctx, fast, ns, true)
		}},
		{"webhook, two calls (before)", func(ctx context.Context) error {
			deleteAll(ctx)
			if _, err := ar.MutatingWebhookConfigurations().Create(ctx, mut.DeepCopy(), metav1.CreateOptions{}); err != nil {
				return err
			}
			if _, err := ar.ValidatingWebhookConfigurations().Create(ctx, val.DeepCopy(), metav1.CreateOptions{}); err != nil {
				return err
			}
			// Both configurations reach the API server's informers at the
			// same moment; the warm-up leaves them time either way.
			return waitInjected(ctx, fast, ns, true)
		}},
		{"policy mode (shipped)", applyPolicies(policies)},
		{"policy mode, before enforcement", applyPolicies(without(without(without(policies, "pod-identity-enforce"), "pod-identity-enforce-updates"), "pod-identity-parameters-writers"))},
		{"policy mode, no warnings", applyPolicies(without(policies, "pod-identity-warn"))},
		{"policy mode, ApplyConfiguration", applyPolicies(applyConfigurationVariant(policies))},
		{"policy mode, mutating only", applyPolicies(without(without(policies, "pod-identity-warn"), "pod-identity-deny"))},
		// The floor of any MutatingAdmissionPolicy: one that matches every
		// pod and adds nothing. It does not inject: wait for it instead.
		{"floor: 3 policies, no parameters", applyFloor(floorPolicies("", false))},
		{"floor: 3 policies, IdentityParameters", applyFloor(floorPolicies("crd", false))},
		{"floor: 3 policies, IdentityParameters, gated out", applyFloor(floorPolicies("crd", true))},
		{"floor: 3 policies, ConfigMap", applyFloor(floorPolicies("configmap", false))},
		{"floor: 3 policies, ConfigMap, gated out", applyFloor(floorPolicies("configmap", true))},
		// Not built: the mutating policy with the templates written into
		// it, reading a parameters object of entries and values only.
		{"policy mode, templates in the policy (prototype)", applyPolicies(folded)},
		{"policy mode, entries written out (prototype)", applyPolicies(inline)},
		{"policy mode, templates in the policy, parameters in a ServiceAccount (prototype)", applyPolicies(typed)},
		// What `injector sync --written-policy` writes: its records of
		// the namespace and its policy, from the same functions.
		{"policy mode, written policy (sync --written-policy)", applySame(syncWritten)},
		// The least any policy-mode design pays for this pod: applying
		// the injection's patch, with nothing to work out.
		{"floor: the injection as a constant patch", func(ctx context.Context) error {
			if err := applyPolicies(constant)(ctx); err != nil {
				return err
			}
			// The last setup's policies may still act for a moment (the
			// API server's informers): wait for the pod they give.
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				got, err := fast.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					return err
				}
				if admitted(got) == admitted(injectedPod) {
					break
				}
				if time.Now().After(deadline) {
					return errors.New("the constant patch does not give the pod what the shipped policies give it")
				}
			}
			return nil
		}},
		{"floor: the constant patch with the shipped policy's bookkeeping", applyPolicies(bookkeeping)},
		{"a policy that does nothing", func(ctx context.Context) error {
			deleteAll(ctx)
			if err := cluster.ApplyAdmissionPolicies(ctx, floor); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
			return nil
		}},
	}
	if only != "" {
		var keep []setup
		for _, s := range setups {
			if s.name == "no injection" || strings.Contains(only, s.name) {
				keep = append(keep, s)
			}
		}
		setups = keep
	}
	results := make([][]result, len(setups))
	for r := range rounds {
		for i, s := range setups {
			if err := s.apply(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			load(ctx, fast, ns, concurrency, warmup)
			if profile != "" && s.name == profile {
				go func() {
					// The API server's CPU profile while this setup is measured.
					sec := max(1, int(duration.Seconds())-1)
					b, err := fast.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", fmt.Sprint(sec)).DoRaw(ctx)
					if err == nil {
						err = os.WriteFile(profileFile, b, 0o644)
					}
					fmt.Fprintf(os.Stderr, "kube-apiserver CPU profile of %q in %s (%v)\n", s.name, profileFile, err)
				}()
			}
			before := policyChecks(ctx, fast)
			res := load(ctx, fast, ns, concurrency, duration)
			after := policyChecks(ctx, fast)
			results[i] = append(results[i], res)
			fmt.Fprintf(os.Stderr, "round %d: %-30s %7.0f pods/s, p50 %s, p99 %s, errors %d, policy evaluations per pod: %s\n", r+1, s.name, res.rate(), res.percentile(0.5).Round(10*time.Microsecond), res.percentile(0.99).Round(10*time.Microsecond), res.errors, perPod(before, after, res.pods))
		}
	}
	what := "with AWS and Azure identities"
	if plain {
		what = "without identity"
	}
	fmt.Printf("\nkube-apiserver %s, pods %s POSTed with dryRun=All, %d in flight, %d interleaved rounds of %s, the load generator on the same machine\n\n", e2e.KubeVersion, what, concurrency, rounds, duration)
	fmt.Printf("%-30s %9s %10s %10s %8s %s\n", "setup", "pods/s", "p50", "p99", "errors", "ratio to no injection (median of rounds, range)")
	for i, s := range setups {
		var all result
		var ratios []float64
		for r, res := range results[i] {
			all.pods += res.pods
			all.seconds += res.seconds
			all.errors += res.errors
			all.latencies = append(all.latencies, res.latencies...)
			ratios = append(ratios, res.rate()/results[0][r].rate())
		}
		sort.Float64s(ratios)
		fmt.Printf("%-30s %9.0f %10s %10s %8d %.2f (%.2f to %.2f)\n", s.name, all.rate(), all.percentile(0.5).Round(10*time.Microsecond), all.percentile(0.99).Round(10*time.Microsecond), all.errors,
			ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}
	return nil
}

// waitInjected waits until a dry-run pod comes back injected (or not).
func waitInjected(ctx context.Context, c kubernetes.Interface, ns string, want bool) error {
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var p *corev1.Pod
		p, err = c.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && (len(p.Spec.Volumes) > 1) == want {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the admission setup never took effect (injected: %v; last error: %v)", want, err)
}

// load creates dry-run pods from n workers for d.
func load(ctx context.Context, c kubernetes.Interface, ns string, n int, d time.Duration) result {
	var mu sync.Mutex
	var res result
	var stop atomic.Bool
	var wg sync.WaitGroup
	t0 := time.Now()
	for range n {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for !stop.Load() {
				s := time.Now()
				_, err := c.CoreV1().Pods(ns).Create(ctx, loadPod(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(s))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			mu.Unlock()
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	res.seconds = time.Since(t0).Seconds()
	res.pods = len(res.latencies)
	return res
}

// pod is the realistic pod apibench creates (testenv.APIBenchPod).
func pod() *corev1.Pod { return testenv.APIBenchPod() }

// without returns objs less the policy named name and its binding.
func without(objs []*unstructured.Unstructured, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetName() != name {
			out = append(out, o)
		}
	}
	return out
}

// applyConfigurationVariant is the shipped policies with the containers'
// additions made by an ApplyConfiguration instead of JSON patch operations.
// (The volumes stay a JSON patch: the API server refuses an
// ApplyConfiguration that sets projected.sources, an atomic list.) For the
// benchmark's pod only: variables with values, no conflicts.
func applyConfigurationVariant(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		o = o.DeepCopy()
		if o.GetKind() == "MutatingAdmissionPolicy" {
			_ = unstructured.SetNestedSlice(o.Object, []any{
				map[string]any{"patchType": "JSONPatch", "jsonPatch": map[string]any{"expression": volumesExpr}},
				map[string]any{"patchType": "ApplyConfiguration", "applyConfiguration": map[string]any{"expression": applyExpr}}}, "spec", "mutations")
		}
		out = append(out, o)
	}
	return out
}

const volumesExpr = `size(variables.newVolumes) == 0 ? [] : has(object.spec.volumes) ?
  variables.newVolumes.map(v, JSONPatch{op: 'add', path: '/spec/volumes/-', value: v}) :
  [JSONPatch{op: 'add', path: '/spec/volumes', value: variables.newVolumes}]`

const applyExpr = `Object{spec: Object.spec{
  containers: variables.containers.map(k, [variables.applied.filter(x, k.c.name in x.containers)].map(xs, Object.spec.containers{name: k.c.name,
    volumeMounts: xs.map(x, x.mounts.filter(m, !(m.mountPath in k.paths))).flatten().map(m, Object.spec.containers.volumeMounts{name: m.volumeName, mountPath: m.mountPath, readOnly: true}),
    env: xs.map(x, x.env.filter(g, !g.vars.exists(v, v.name in k.env)).map(g, g.vars).flatten()).flatten().map(v, Object.spec.containers.env{name: v.name, value: v.value})
  })[0])
}}`

// floorPolicies are the shape policy mode needs, doing nothing: a
// MutatingAdmissionPolicy (injection) and two ValidatingAdmissionPolicies
// (refusals, bound to Deny; warnings, bound to Warn), each for every pod.
// params is "" (no parameters), "crd" (bound to the namespace's
// IdentityParameters that sync writes, which the API server holds
// unstructured) or "configmap" (bound to a ConfigMap of the same content,
// which it holds typed). Each looks the pod's ServiceAccount up in its
// parameters in a match condition, as the shipped gates do; gated, the
// condition is false, as for a pod with nothing to inject, refuse or warn
// about. Their cost is the floor of any policy-mode design of that shape.
func floorPolicies(params string, gated bool) []*unstructured.Unstructured {
	rules := map[string]any{"resourceRules": []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE"}, "resources": []any{"pods"}}}}
	var kind map[string]any
	cond := "size(object.spec.containers) >= 0"
	switch params {
	case "crd":
		kind = map[string]any{"apiVersion": "pod-identity.io/v1alpha1", "kind": "IdentityParameters"}
		cond = "object.spec.serviceAccountName in params.spec.?serviceAccounts.orValue({})"
	case "configmap":
		kind = map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}
		cond = "object.spec.serviceAccountName in params.?data.orValue({})"
	}
	if gated {
		cond = "!(" + cond + ")"
	}
	var objs []*unstructured.Unstructured
	for _, p := range []struct{ kind, name, action string }{
		{"MutatingAdmissionPolicy", "apibench-floor-inject", ""},
		{"ValidatingAdmissionPolicy", "apibench-floor-deny", "Deny"},
		{"ValidatingAdmissionPolicy", "apibench-floor-warn", "Warn"},
	} {
		spec := map[string]any{"matchConstraints": rules, "failurePolicy": "Fail",
			"matchConditions": []any{map[string]any{"name": "lookup", "expression": cond}}}
		if kind != nil {
			spec["paramKind"] = kind
		}
		if p.action == "" {
			spec["reinvocationPolicy"] = "Never"
			spec["mutations"] = []any{map[string]any{"patchType": "JSONPatch", "jsonPatch": map[string]any{
				"expression": "size(object.spec.containers) < 0 ? [JSONPatch{op: 'add', path: '/metadata/labels/never', value: 'x'}] : []"}}}
		} else {
			spec["validations"] = []any{map[string]any{"expression": "size(object.spec.containers) >= 0"}}
		}
		bspec := map[string]any{"policyName": p.name}
		if kind != nil {
			bspec["paramRef"] = map[string]any{"name": "pod-identity", "parameterNotFoundAction": "Deny"}
		}
		if p.action != "" {
			bspec["validationActions"] = []any{p.action}
		}
		api := "admissionregistration.k8s.io/v1"
		objs = append(objs,
			&unstructured.Unstructured{Object: map[string]any{"apiVersion": api, "kind": p.kind, "metadata": map[string]any{"name": p.name}, "spec": spec}},
			&unstructured.Unstructured{Object: map[string]any{"apiVersion": api, "kind": p.kind + "Binding", "metadata": map[string]any{"name": p.name}, "spec": bspec}})
	}
	return objs
}

// emptyPolicy is a MutatingAdmissionPolicy for every pod that adds
// nothing, and its binding: the cost of any policy.
func emptyPolicy() []*unstructured.Unstructured {
	pol := map[string]any{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy", "metadata": map[string]any{"name": "apibench-floor"},
		"spec": map[string]any{
			"matchConstraints":   map[string]any{"resourceRules": []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE"}, "resources": []any{"pods"}}}},
			"reinvocationPolicy": "Never", "failurePolicy": "Fail",
			"mutations": []any{map[string]any{"patchType": "JSONPatch", "jsonPatch": map[string]any{
				"expression": "size(object.spec.containers) < 0 ? [JSONPatch{op: 'add', path: '/metadata/labels/never', value: 'x'}] : []"}}}}}
	bind := map[string]any{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding", "metadata": map[string]any{"name": "apibench-floor"},
		"spec": map[string]any{"policyName": "apibench-floor"}}
	return []*unstructured.Unstructured{{Object: pol}, {Object: bind}}
}

// copyParametersToConfigMap writes the namespace's IdentityParameters as a
// ConfigMap named pod-identity: each ServiceAccount's entry, and each other
// field of the spec, as JSON under a key of its name.
func copyParametersToConfigMap(ctx context.Context, cluster *e2e.Cluster, ns string) error {
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		return err
	}
	u, err := dyn.Resource(e2e.IdentityParametersGVR).Namespace(ns).Get(ctx, "pod-identity", metav1.GetOptions{})
	if err != nil {
		return err
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	whole, _ := json.Marshal(u.Object)
	fmt.Fprintf(os.Stderr, "the namespace's IdentityParameters: %d bytes as JSON\n", len(whole))
	if os.Getenv("APIBENCH_DUMP") != "" {
		_ = os.WriteFile(os.Getenv("APIBENCH_DUMP"), whole, 0o644)
	}
	data := map[string]string{}
	for k, v := range spec {
		if k == "serviceAccounts" {
			for sa, p := range v.(map[string]any) {
				b, _ := json.Marshal(p)
				data[sa] = string(b)
			}
			continue
		}
		b, _ := json.Marshal(v)
		data["spec."+k] = string(b)
	}
	_, err = cluster.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pod-identity"}, Data: data}, metav1.CreateOptions{})
	return err
}

// policyChecks reads the API server's counts of admission policy
// evaluations (a mutating policy's: one per mutation applied; a validating
// policy's: one per evaluation past its match conditions), by policy.
func policyChecks(ctx context.Context, c kubernetes.Interface) map[string]float64 {
	b, err := c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "apiserver_mutating_admission_policy_check_total{") && !strings.HasPrefix(line, "apiserver_validating_admission_policy_check_total{") {
			continue
		}
		i := strings.Index(line, `policy="`)
		j := strings.LastIndex(line, " ")
		if i < 0 || j < 0 {
			continue
		}
		name := line[i+len(`policy="`):]
		name = name[:strings.Index(name, `"`)]
		var v float64
		if _, err := fmt.Sscan(line[j+1:], &v); err == nil {
			out[name] += v
		}
	}
	return out
}

// perPod says how many evaluations of each policy a pod cost.
func perPod(before, after map[string]float64, pods int) string {
	if pods == 0 {
		return "-"
	}
	var parts []string
	for name, v := range after {
		if d := v - before[name]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, d/float64(pods)))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// foldedTemplates is a measurement of a design not built: the shipped
// policies, but the mutating one reads the namespace's templates as a
// constant written into its expressions (as `injector sync` would write
// it) and its parameters from a copy of the namespace's IdentityParameters
// that holds only the ServiceAccounts' entries and values and the default,
// without the messages the mutating policy never reads. The validating
// policies read the shipped object. It writes that copy, named
// pod-identity-slim, and returns the policies.
func foldedTemplates(ctx context.Context, cluster *e2e.Cluster, ns string, policies []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	var literal string
	err := parametersCopy(ctx, cluster, ns, "pod-identity-slim", "without templates and messages", func(spec map[string]any) {
		templates, _ := spec["templates"].([]any)
		for i, t := range templates {
			templates[i] = withoutMessages(t)
		}
		literal = celLiteral(templates)
		delete(spec, "templates")
	})
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, o := range policies {
		o = o.DeepCopy()
		switch o.GetKind() {
		case "MutatingAdmissionPolicy":
			o.Object["spec"] = replaceInStrings(o.Object["spec"], "params.spec.templates", "("+literal+")")
		case "MutatingAdmissionPolicyBinding":
			_ = unstructured.SetNestedMap(o.Object, map[string]any{"name": "pod-identity-slim", "parameterNotFoundAction": "Deny"}, "spec", "paramRef")
		}
		out = append(out, o)
	}
	return out, nil
}

// parametersCopy writes a copy of the namespace's IdentityParameters under
// name, with what the mutating policy reads only (the ServiceAccounts, the
// templates and the default, its entries without messages), as edit
// leaves it; said says how, in the line that gives its size.
func parametersCopy(ctx context.Context, cluster *e2e.Cluster, ns, name, said string, edit func(spec map[string]any)) error {
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		return err
	}
	res := dyn.Resource(e2e.IdentityParametersGVR).Namespace(ns)
	u, err := res.Get(ctx, "pod-identity", metav1.GetOptions{})
	if err != nil {
		return err
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	slim := map[string]any{"serviceAccounts": spec["serviceAccounts"], "templates": spec["templates"]}
	if d, ok := spec["default"].(map[string]any); ok {
		if is, ok := d["injections"].([]any); ok {
			for i, e := range is {
				is[i] = withoutMessages(e)
			}
		}
		slim["default"] = d
	}
	edit(slim)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(),
		// Labelled as sync labels an object of a namespace no identity
		// policy governs: otherwise pod-identity-enforce, whose binding
		// selects every other object of the kind, would read the copy at
		// every pod of every setup.
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{v1alpha1.EnforcedLabel: "false"}}, "spec": slim}}
	created, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	whole, _ := json.Marshal(created.Object)
	fmt.Fprintf(os.Stderr, "the mutating policy's parameters %s: %d bytes as JSON\n", said, len(whole))
	return nil
}

// withoutMessages is an entry with its messages left out, and its lists of
// warnings and refusals (whose presence the mutating policy reads) cut to
// one word.
func withoutMessages(e any) any {
	m, ok := e.(map[string]any)
	if !ok {
		return e
	}
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "source", "knownTokenFiles":
		case "warnings", "denied":
			out[k] = []any{"x"}
		default:
			out[k] = v
		}
	}
	return out
}

// celLiteral writes v (decoded JSON) as a CEL expression of the same value,
// each map value and list element dyn() so that the type checker takes
// values of mixed types.
func celLiteral(v any) string {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, strconv.Quote(k)+": dyn("+celLiteral(v[k])+")")
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			parts = append(parts, "dyn("+celLiteral(e)+")")
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatInt(int64(v), 10)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// replaceInStrings is v (decoded JSON) with old replaced by new in every
// string.
func replaceInStrings(v any, old, new string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = replaceInStrings(e, old, new)
		}
	case []any:
		for i, e := range v {
			v[i] = replaceInStrings(e, old, new)
		}
	case string:
		return strings.ReplaceAll(v, old, new)
	}
	return v
}

// constantPatchFloor is the floor of any policy-mode design for the
// benchmark's pod: a MutatingAdmissionPolicy with no parameters, no match
// condition and no reinvocation, whose mutation is a constant, the JSON
// patch operations that give the pod what the shipped policies give it
// (read from a dry-run creation under them, against one with no
// injection). Applying that patch is all it does.
func constantPatchFloor(plain, injected *corev1.Pod) []*unstructured.Unstructured {
	var ops []string
	add := func(path string, v any) {
		b, _ := json.Marshal(v)
		var d any
		_ = json.Unmarshal(b, &d)
		ops = append(ops, "JSONPatch{op: 'add', path: "+strconv.Quote(path)+", value: "+celLiteral(d)+"}")
	}
	addMap := func(path string, before, after map[string]string) {
		added := map[string]string{}
		for k, v := range after {
			if _, ok := before[k]; !ok {
				added[k] = v
			}
		}
		if len(added) == 0 {
			return
		}
		if len(before) == 0 {
			add(path, added)
			return
		}
		keys := make([]string, 0, len(added))
		for k := range added {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add(path+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), added[k])
		}
	}
	addList := func(path string, before int, after []any) {
		if len(after) <= before {
			return
		}
		if before == 0 {
			add(path, after)
			return
		}
		for _, v := range after[before:] {
			add(path+"/-", v)
		}
	}
	anys := func(v any) []any {
		b, _ := json.Marshal(v)
		var out []any
		_ = json.Unmarshal(b, &out)
		return out
	}
	addMap("/metadata/labels", plain.Labels, injected.Labels)
	addMap("/metadata/annotations", plain.Annotations, injected.Annotations)
	addList("/spec/volumes", len(plain.Spec.Volumes), anys(injected.Spec.Volumes))
	for i := range injected.Spec.Containers {
		p, q := plain.Spec.Containers[i], injected.Spec.Containers[i]
		addList(fmt.Sprintf("/spec/containers/%d/volumeMounts", i), len(p.VolumeMounts), anys(q.VolumeMounts))
		addList(fmt.Sprintf("/spec/containers/%d/env", i), len(p.Env), anys(q.Env))
	}
	fmt.Fprintf(os.Stderr, "the constant patch: %d operations\n", len(ops))
	api := "admissionregistration.k8s.io/v1"
	pol := map[string]any{"apiVersion": api, "kind": "MutatingAdmissionPolicy", "metadata": map[string]any{"name": "apibench-constant-patch"},
		"spec": map[string]any{
			"matchConstraints":   map[string]any{"resourceRules": []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE"}, "resources": []any{"pods"}}}},
			"reinvocationPolicy": "Never", "failurePolicy": "Fail",
			"mutations": []any{map[string]any{"patchType": "JSONPatch", "jsonPatch": map[string]any{"expression": "[" + strings.Join(ops, ",\n") + "]"}}}}}
	bind := map[string]any{"apiVersion": api, "kind": "MutatingAdmissionPolicyBinding", "metadata": map[string]any{"name": "apibench-constant-patch"},
		"spec": map[string]any{"policyName": "apibench-constant-patch"}}
	return []*unstructured.Unstructured{{Object: pol}, {Object: bind}}
}

// admitted is what admission gave p (its spec, labels and annotations),
// the name of its API token volume, random, left out.
func admitted(p *corev1.Pod) string {
	b, _ := json.Marshal([]any{p.Spec, p.Labels, p.Annotations})
	return regexp.MustCompile(`kube-api-access-[a-z0-9]+`).ReplaceAllString(string(b), "kube-api-access")
}

// inlineInjections is another measurement of a design not built: the
// shipped policies, but the mutating one reads a second parameters object
// in which each ServiceAccount's entries are written out whole (its
// values in their places) rather than named by index in the templates,
// without the messages it never reads: no replacements at admission. The
// validating policies read the shipped object. It writes that object,
// named pod-identity-inline, and returns the policies.
func inlineInjections(ctx context.Context, cluster *e2e.Cluster, ns string, policies []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	err := parametersCopy(ctx, cluster, ns, "pod-identity-inline", "with entries written out, without messages", func(spec map[string]any) {
		templates, _ := spec["templates"].([]any)
		sas, _ := spec["serviceAccounts"].(map[string]any)
		for name, v := range sas {
			p, _ := v.(map[string]any)
			entries, _ := p["entries"].([]any)
			if len(entries) == 0 {
				continue
			}
			values, _ := p["values"].([]any)
			var injections []any
			for _, i := range entries {
				t := runtime.DeepCopyJSONValue(templates[int(i.(int64))])
				for n := 3; n >= 0; n-- {
					v := ""
					if n < len(values) {
						v = values[n].(string)
					}
					t = replaceInStrings(t, fmt.Sprintf("{value:%d}", n), v)
				}
				injections = append(injections, withoutMessages(t))
			}
			delete(p, "entries")
			delete(p, "values")
			p["injections"] = injections
			sas[name] = p
		}
		delete(spec, "templates")
	})
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, o := range policies {
		o = o.DeepCopy()
		if o.GetKind() == "MutatingAdmissionPolicyBinding" {
			_ = unstructured.SetNestedMap(o.Object, map[string]any{"name": "pod-identity-inline", "parameterNotFoundAction": "Deny"}, "spec", "paramRef")
		}
		out = append(out, o)
	}
	return out, nil
}

// serviceAccountParameters is the templates-in-the-policy prototype
// reading its entries and values from a ServiceAccount's annotations
// instead of a custom resource: a typed object the API server reads
// lazily, where it encodes a custom resource whole at every evaluation.
// Each ServiceAccount's annotation (keyed by its name) holds its entries
// and values, split by '|'. Prototype only: no default, no enforcement,
// no ServiceAccount with injections of its own.
func serviceAccountParameters(ctx context.Context, cluster *e2e.Cluster, ns string, folded []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	spec, err := namespaceParameters(ctx, cluster, ns)
	if err != nil {
		return nil, err
	}
	typed, err := testenv.TypedParameters(ns, spec)
	if err != nil {
		return nil, err
	}
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, typed, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	dec := func(s string) string {
		return "[" + s + ".split('|')].map(f, dyn({?'entries': f[0] == '' ? optional.none() : optional.of(dyn(f[0].split(',').map(i, int(i)))), 'values': dyn(lists.range(size(f) - 1).map(i, f[i + 1]))}))[0]"
	}
	repl := []string{
		"params.spec.?serviceAccounts[?variables.serviceAccount].orValue(dyn({}))", "[params.metadata.?annotations[?variables.serviceAccount]].map(o, o.hasValue() ? " + dec("o.value()") + " : dyn({}))[0]",
		"params.spec.serviceAccounts[n]", dec("params.metadata.annotations[n]"),
		"params.spec.?serviceAccounts.orValue({})", "params.metadata.?annotations.orValue({})",
		"params.spec.?default.?injections.orValue([])", "[]",
		"has(params.spec.default)", "false",
		"params.spec.default", "dyn({})",
		"params.spec.?enforcement.?apiToken.?pod.?denied.hasValue()", "false",
		"params.spec.?enforcement.?apiToken.?pod.?warnings.hasValue()", "false",
		"params.metadata.generation", "params.metadata.resourceVersion",
	}
	var out []*unstructured.Unstructured
	for _, o := range folded {
		o = o.DeepCopy()
		switch o.GetKind() {
		case "MutatingAdmissionPolicy":
			for i := 0; i < len(repl); i += 2 {
				o.Object["spec"] = replaceInStrings(o.Object["spec"], repl[i], repl[i+1])
			}
			if b, _ := json.Marshal(o.Object["spec"]); strings.Contains(string(b), "params.spec") {
				return nil, errors.New("the prototype left a reading of params.spec")
			}
			_ = unstructured.SetNestedField(o.Object, map[string]any{"apiVersion": "v1", "kind": "ServiceAccount"}, "spec", "paramKind")
		case "MutatingAdmissionPolicyBinding":
			_ = unstructured.SetNestedMap(o.Object, map[string]any{"name": testenv.TypedParametersName, "parameterNotFoundAction": "Deny"}, "spec", "paramRef")
		}
		out = append(out, o)
	}
	return out, nil
}

// bookkeepingFloor is the constant patch's floor with what any policy of
// the shipped shape pays besides working the patch out: it reads the
// ServiceAccount parameters of the typed prototype, skips a pod it has
// acted on (the shipped match conditions, their lookups of the pod's
// ServiceAccount), is reinvoked, and computes its mark (each container's
// name and numbers of variables and mounts after the patch, the
// ServiceAccount, the parameters' version, the numbers of labels and
// annotations) where the constant patch writes it as it was. The rest of
// the patch stays constant: the rules that decide it cost nothing here.
func bookkeepingFloor(constant []*unstructured.Unstructured, plain, injected *corev1.Pod) ([]*unstructured.Unstructured, error) {
	mark := injected.Annotations[v1alpha1.PolicyCheckedContainersAnnotation]
	if mark == "" {
		return nil, errors.New("the injected pod has no mark")
	}
	var added []string
	for i, c := range injected.Spec.Containers {
		p := plain.Spec.Containers[i]
		added = append(added, fmt.Sprintf("[%d, %d]", len(c.Env)-len(p.Env), len(c.VolumeMounts)-len(p.VolumeMounts)))
	}
	computed := "(object.spec.?initContainers.orValue([]).map(c, c.name + ':' + string(size(c.?env.orValue([]))) + ':' + string(size(c.?volumeMounts.orValue([])))).join(',') + '|' + " +
		"[[" + strings.Join(added, ", ") + "]].map(a, lists.range(size(object.spec.containers)).map(i, [object.spec.containers[i]].map(c, c.name + ':' + string(size(c.?env.orValue([])) + (i < size(a) ? a[i][0] : 0)) + ':' + string(size(c.?volumeMounts.orValue([])) + (i < size(a) ? a[i][1] : 0)))[0]).join(','))[0] + " +
		"';' + variables.serviceAccount + ';' + params.metadata.uid + ';' + params.metadata.resourceVersion + ';' + string(size(object.metadata.?labels.orValue({})) + 1) + ';' + string(size(object.metadata.?annotations.orValue({})) + 1))"
	out := make([]*unstructured.Unstructured, 0, len(constant))
	for _, o := range constant {
		o = o.DeepCopy()
		if o.GetKind() == "MutatingAdmissionPolicy" {
			spec := o.Object["spec"].(map[string]any)
			expr := spec["mutations"].([]any)[0].(map[string]any)["jsonPatch"].(map[string]any)["expression"].(string)
			if !strings.Contains(expr, strconv.Quote(mark)) {
				return nil, errors.New("the constant patch does not write the mark")
			}
			expr = strings.Replace(expr, strconv.Quote(mark), computed, 1)
			spec["mutations"] = []any{map[string]any{"patchType": "JSONPatch", "jsonPatch": map[string]any{"expression": expr}}}
			spec["reinvocationPolicy"] = "IfNeeded"
			spec["paramKind"] = map[string]any{"apiVersion": "v1", "kind": "ServiceAccount"}
			spec["variables"] = []any{map[string]any{"name": "serviceAccount", "expression": "object.spec.?serviceAccountName.orValue('') != '' ? object.spec.serviceAccountName : 'default'"}}
			spec["matchConditions"] = typedMatchConditions()
		}
		if o.GetKind() == "MutatingAdmissionPolicyBinding" {
			o.Object["spec"].(map[string]any)["paramRef"] = map[string]any{"name": testenv.TypedParametersName, "parameterNotFoundAction": "Deny"}
		}
		out = append(out, o)
	}
	return out, nil
}

// typedMatchConditions are the shipped mutating policy's match
// conditions for the ServiceAccount parameters of the typed prototype.
func typedMatchConditions() []any {
	sa := "[object.spec.?serviceAccountName.orValue('') != '' ? object.spec.serviceAccountName : 'default']"
	return []any{
		map[string]any{"name": "not-a-mirror-pod", "expression": "!has(object.metadata.annotations) || !('kubernetes.io/config.mirror' in object.metadata.annotations)"},
		map[string]any{"name": "not-checked-yet", "expression": "!('" + v1alpha1.PolicyCheckedContainersAnnotation + "' in object.metadata.?annotations.orValue({})) || " + sa + ".all(n, " +
			"object.metadata.annotations['" + v1alpha1.PolicyCheckedContainersAnnotation + "'] != " +
			"object.spec.?initContainers.orValue([]).map(c, c.name + ':' + string(size(c.?env.orValue([]))) + ':' + string(size(c.?volumeMounts.orValue([])))).join(',') + '|' + " +
			"object.spec.containers.map(c, c.name + ':' + string(size(c.?env.orValue([]))) + ':' + string(size(c.?volumeMounts.orValue([])))).join(',') + " +
			"';' + n + ';' + params.metadata.uid + ';' + params.metadata.resourceVersion + ';' + string(size(object.metadata.?labels.orValue({}))) + ';' + string(size(object.metadata.?annotations.orValue({}))) || " +
			"!(n in params.metadata.?annotations.orValue({})) || !object.spec.?volumes.orValue([]).exists(v, v.name in ['aws-iam-token', 'azure-identity-token']))"},
		map[string]any{"name": "may-act", "expression": sa + ".all(n, n in params.metadata.?annotations.orValue({}))"},
	}
}

// namespaceParameters is the spec of the namespace's IdentityParameters,
// as sync wrote it.
func namespaceParameters(ctx context.Context, cluster *e2e.Cluster, ns string) (v1alpha1.IdentityParametersSpec, error) {
	var params v1alpha1.IdentityParameters
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		return params.Spec, err
	}
	u, err := dyn.Resource(e2e.IdentityParametersGVR).Namespace(ns).Get(ctx, "pod-identity", metav1.GetOptions{})
	if err != nil {
		return params.Spec, err
	}
	err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &params)
	return params.Spec, err
}

// syncWrittenPolicy is policy mode as `injector sync --written-policy`
// writes it, from the functions it calls: the namespace's records
// (parameters.NamespaceRecords of the parameters sync wrote), created
// here, and the written policy (parameters.WrittenPolicy) with the
// binding pointed at it; the validating policies are the shipped ones.
func syncWrittenPolicy(ctx context.Context, cluster *e2e.Cluster, ns string, policies []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	spec, err := namespaceParameters(ctx, cluster, ns)
	if err != nil {
		return nil, err
	}
	recs, err := parameters.NamespaceRecords(spec)
	if err != nil {
		return nil, err
	}
	if len(recs.Left) > 0 {
		return nil, fmt.Errorf("records left out %v", recs.Left)
	}
	shards, _ := recs.Shards(recs.Layout())
	if len(shards) != 1 {
		return nil, fmt.Errorf("records in %d objects, want one", len(shards))
	}
	records := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: parameters.RecordsName, Annotations: shards[0],
		Labels: map[string]string{parameters.ManagedByLabel: parameters.ManagedBy}}}
	if _, err := cluster.Client.CoreV1().ServiceAccounts(ns).Create(ctx, records, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, o := range policies {
		switch o.GetKind() {
		case "MutatingAdmissionPolicy":
			var shipped admissionregv1.MutatingAdmissionPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &shipped); err != nil {
				return nil, err
			}
			written, err := parameters.WrittenPolicy(&shipped, recs.Sets)
			if err != nil {
				return nil, err
			}
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(written)
			if err != nil {
				return nil, err
			}
			o = &unstructured.Unstructured{Object: obj}
			o.SetAPIVersion("admissionregistration.k8s.io/v1")
			o.SetKind("MutatingAdmissionPolicy")
		case "MutatingAdmissionPolicyBinding":
			o = o.DeepCopy()
			_ = unstructured.SetNestedField(o.Object, parameters.WrittenPolicyName, "spec", "policyName")
			// The shipped binding's selector (sync's label) selects the
			// records too: only the policy's name changes.
		}
		out = append(out, o)
	}
	return out, nil
}
