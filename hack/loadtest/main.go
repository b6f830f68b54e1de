// Command loadtest measures the webhook under load on this machine. It
// starts four servers, each in a child process of its own so that its
// memory can be read: the injector's admission stack (the handler, the
// review metrics, the injector's metrics and logging around the engine, with a ServiceAccount cache filled with -serviceaccounts annotated
// ServiceAccounts from a fake clientset); a floor server that only decodes
// the AdmissionReview and answers allowed; the floor answering with the
// injector's own patch; and the injector with -policies identity policies
// loaded. It sends the same AdmissionReview for a realistic
// three-container pod to each over TLS keep-alive at -concurrency, in
// -rounds rounds of -duration that alternate between the servers, and
// prints requests/s, p50/p99 latency, errors, resident memory, and the
// injector's throughput as a ratio of the floors' (the median of the
// rounds').
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pod-identity/injector/internal/admission"
	"github.com/pod-identity/injector/internal/certwatch"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/server"
	"github.com/pod-identity/injector/internal/testenv"
	"github.com/pod-identity/injector/internal/testpki"
)

func main() {
	mode := flag.String("mode", "run", "run (the load generator), or the child modes injector and floor")
	concurrency := flag.Int("concurrency", 8, "requests in flight")
	duration := flag.Duration("duration", 5*time.Second, "load time per server and round")
	rounds := flag.Int("rounds", 3, "alternating rounds of load per server")
	warmup := flag.Duration("warmup", 2*time.Second, "load time before measuring")
	serviceAccounts := flag.Int("serviceaccounts", 20000, "annotated ServiceAccounts in the injector's cache")
	certFile := flag.String("cert", "", "child: serving certificate")
	keyFile := flag.String("key", "", "child: serving key")
	minRatio := flag.Float64("min-ratio", 0, "exit non-zero if injector/floor throughput is below this")
	patchFile := flag.String("patch-file", "", "child floor: answer with this patch")
	policies := flag.Int("policies", 100, "identity policies loaded in the injector+policies server (child injector: how many to load)")
	flag.Parse()
	var err error
	switch *mode {
	case "injector":
		err = serveInjector(*certFile, *keyFile, *serviceAccounts, *policies)
	case "floor":
		err = serveFloor(*certFile, *keyFile, *patchFile)
	case "run":
		err = run(*concurrency, *duration, *warmup, *serviceAccounts, *rounds, *minRatio, *policies)
	default:
		err = fmt.Errorf("-mode %q: expected run, injector or floor", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// typicalPod is an application with a service mesh proxy and a log shipper,
// as a ReplicaSet creates it.
const typicalPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"checkout-7d9f8b6c5-","namespace":"ns-7","labels":{"app":"checkout","pod-template-hash":"7d9f8b6c5","azure.workload.identity/use":"true"},"annotations":{"prometheus.io/scrape":"true","prometheus.io/port":"9090"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"checkout-7d9f8b6c5","uid":"0b6a7d4e-1c2f-4a8e-9a51-2f0c7d3b9e11","controller":true,"blockOwnerDeletion":true}]},"spec":{"serviceAccountName":"sa-7","volumes":[{"name":"config","configMap":{"name":"checkout-config"}},{"name":"cache","emptyDir":{}},{"name":"kube-api-access-abcde","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}]}}],"containers":[{"name":"app","image":"registry.example.com/checkout:3.2.1","ports":[{"containerPort":8080,"name":"http"}],"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"DB_HOST","value":"db.shop.svc"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],"resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"memory":"512Mi"}},"volumeMounts":[{"name":"config","mountPath":"/etc/checkout"},{"name":"cache","mountPath":"/var/cache/checkout"},{"name":"kube-api-access-abcde","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}],"readinessProbe":{"httpGet":{"path":"/ready","port":8080}}},{"name":"envoy","image":"registry.example.com/envoy:1.30","args":["--config","/etc/envoy/envoy.yaml"],"env":[{"name":"ENVOY_UID","value":"1337"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"}},"volumeMounts":[{"name":"kube-api-access-abcde","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]},{"name":"log-shipper","image":"registry.example.com/fluent-bit:3.0","volumeMounts":[{"name":"cache","mountPath":"/var/log/app","readOnly":true},{"name":"kube-api-access-abcde","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]}]}}`

func reviewBody() []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"5f0a6c1e-8d2b-4a3c-9e7f-1b2c3d4e5f60","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"namespace":"ns-7","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"9a8b7c6d","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},"object":` +
		typicalPod + `,"oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}`)
}

// generatedServiceAccounts answers a list call as an API server would, with
// full objects (labels, unrelated annotations, managed fields) that the
// cache must trim; they are not kept anywhere else.
func generatedServiceAccounts(n int) *corev1.ServiceAccountList {
	list := &corev1.ServiceAccountList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
	list.Items = make([]corev1.ServiceAccount, n)
	for i := range list.Items {
		ns, name := "ns-"+strconv.Itoa(i%500), "sa-"+strconv.Itoa(i/500)
		list.Items[i] = corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), ResourceVersion: strconv.Itoa(1000 + i),
			Labels: map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "helm"},
			Annotations: map[string]string{
				"eks.amazonaws.com/role-arn":                       "arn:aws:iam::111122223333:role/" + ns + "-" + name,
				"azure.workload.identity/client-id":                "2f9c1a4e-7b3d-4c8e-9a61-0d5e8f7b2c11",
				"meta.helm.sh/release-name":                        name,
				"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"` + name + `","namespace":"` + ns + `"}}`,
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
				FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:annotations":{".":{},"f:eks.amazonaws.com/role-arn":{}}}}`)}},
		}}
	}
	return list
}

func serveInjector(certFile, keyFile string, n, policies int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	server.SetGCPercent(server.DefaultGCPercent) // as `injector serve` does
	if path := os.Getenv("LOADTEST_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	log := logrus.New()
	log.SetOutput(io.Discard) // formatted as in production, written nowhere
	log.SetFormatter(&logrus.JSONFormatter{})
	engine, err := testenv.Engine(ctx, log)
	if err != nil {
		return err
	}

	client := fake.NewClientset()
	client.PrependReactor("list", "serviceaccounts", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		return true, generatedServiceAccounts(n), nil
	})
	client.PrependWatchReactor("serviceaccounts", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, watch.NewFake(), nil
	})
	prefixes, keys := engine.CacheKeys()
	sas, err := sacache.New(sacache.Config{Client: client, AnnotationPrefixes: prefixes, AnnotationKeys: keys})
	if err != nil {
		return err
	}
	sas.Start(ctx)
	if !sas.WaitForSync(ctx) {
		return errors.New("serviceaccount cache did not sync")
	}
	if sas.Len() != n {
		return fmt.Errorf("cache holds %d serviceaccounts, want %d", sas.Len(), n)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "injector: %d serviceaccounts cached; live heap %.1f MiB, heap from the OS %.1f MiB\n",
		sas.Len(), float64(ms.HeapAlloc)/(1<<20), float64(ms.HeapSys-ms.HeapReleased)/(1<<20))

	reg := prometheus.NewRegistry()
	store := testenv.Policies(policies)
	if sc := store.Scope("ns-7"); policies > 0 && sc.Empty() {
		return errors.New("no policy selects the pod's namespace")
	}
	h, err := server.NewAdmissionHandler(admission.Config{Engine: engine, ServiceAccounts: sas, Log: log, Policies: store}, reg, 0)
	if err != nil {
		return err
	}
	err = serve(ctx, certFile, keyFile, h, reg, log)
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "injector: at exit heap in use %.1f MiB, stacks %.1f MiB, runtime total from the OS %.1f MiB, released %.1f MiB\n",
		float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), float64(ms.Sys)/(1<<20), float64(ms.HeapReleased)/(1<<20))
	return err
}

// serveFloor decodes the review and answers allowed, with the patch in
// patchFile when one is given (a floor that pays for sending the patch but
// not for working it out).
func serveFloor(certFile, keyFile, patchFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var patch []byte
	if patchFile != "" {
		var err error
		if patch, err = os.ReadFile(patchFile); err != nil {
			return err
		}
	}
	h := testenv.FloorHandler(patch)
	log := logrus.New()
	log.SetOutput(io.Discard)
	return serve(ctx, certFile, keyFile, h, prometheus.NewRegistry(), log)
}

// serve runs h with the production server settings and prints the address.
func serve(ctx context.Context, certFile, keyFile string, h http.Handler, reg *prometheus.Registry, log *logrus.Logger) error {
	certs, err := certwatch.New(certFile, keyFile, log)
	if err != nil {
		return err
	}
	cfg := server.Config{}
	tc, err := cfg.TLSConfig(certs.GetCertificate)
	if err != nil {
		return err
	}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", wl.Addr())
	return server.New(cfg, tc, h, reg, func() error { return nil }, log).Serve(ctx, wl, ol)
}

type result struct {
	name          string
	idleRSSKiB    int
	requests      int
	errors        int
	rps           float64
	p50, p99      time.Duration
	rssKiB, hwKiB int
}

// target is one server under test, running in a child process.
type target struct {
	name      string
	cmd       *exec.Cmd
	client    *http.Client
	url       string
	wantPatch bool
	// body, when set, is what this server is sent instead of the review.
	body      []byte
	idle      int
	latencies []time.Duration
	errors    int
	elapsed   time.Duration
}

func run(concurrency int, duration, warmup time.Duration, n, rounds int, minRatio float64, policies int) error {
	dir, err := os.MkdirTemp("", "loadtest")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ca, err := testpki.NewCA("loadtest")
	if err != nil {
		return err
	}
	certFile, keyFile, err := ca.WriteServing(dir, "webhook")
	if err != nil {
		return err
	}
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d; load: %d in flight, %d alternating rounds of %s per server after %s warm-up; one process per server\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), concurrency, rounds, duration, warmup)
	var targets []*target
	defer func() {
		for _, t := range targets {
			stop(t.cmd)
		}
	}()
	body := reviewBody()
	for _, s := range []struct{ name, mode string }{{"floor", "floor"}, {"injector", "injector"}} {
		t, err := start(s.name, s.mode, ca, certFile, keyFile, concurrency, n, "-policies=0")
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		targets = append(targets, t)
	}
	// A third server answers with the injector's own patch for this pod: what
	// sending the patch costs, apart from working it out.
	patchFile := filepath.Join(dir, "patch.json")
	if err := savePatch(targets[1], body, patchFile); err != nil {
		return err
	}
	t, err := start("floor+patch", "floor", ca, certFile, keyFile, concurrency, n, "-patch-file="+patchFile)
	if err != nil {
		return fmt.Errorf("floor+patch: %w", err)
	}
	targets = append(targets, t)
	// A fourth is the injector with identity policies loaded.
	withPolicies := fmt.Sprintf("injector+%d policies", policies)
	if t, err = start(withPolicies, "injector", ca, certFile, keyFile, concurrency, n, "-policies="+strconv.Itoa(policies)); err != nil {
		return fmt.Errorf("%s: %w", withPolicies, err)
	}
	targets = append(targets, t)
	// A fifth is the enforcement webhook of an injector with the same
	// policies, sent the pod as the mutating call's patch leaves it.
	stored, err := storedReview(body, patchFile)
	if err != nil {
		return err
	}
	enforcing := fmt.Sprintf("enforcement+%d policies", policies)
	if t, err = start(enforcing, "injector", ca, certFile, keyFile, concurrency, n, "-policies="+strconv.Itoa(policies)); err != nil {
		return fmt.Errorf("%s: %w", enforcing, err)
	}
	t.url, t.body, t.wantPatch = strings.TrimSuffix(t.url, server.MutatePath)+server.EnforcePath, stored, false
	targets = append(targets, t)
	for _, t := range targets {
		load(t.client, t.url, t.bodyOr(body), t.wantPatch, concurrency, warmup)
	}
	// Rounds alternate between the servers so that both see the same machine.
	var ratios, patchRatios, policyRatios, enforceRatios []float64
	for r := 1; r <= rounds; r++ {
		var rps [5]float64
		for i, t := range targets {
			lat, errs, elapsed := load(t.client, t.url, t.bodyOr(body), t.wantPatch, concurrency, duration)
			t.latencies, t.errors, t.elapsed = append(t.latencies, lat...), t.errors+errs, t.elapsed+elapsed
			rps[i] = float64(len(lat)) / elapsed.Seconds()
		}
		ratios, patchRatios = append(ratios, rps[1]/rps[0]), append(patchRatios, rps[1]/rps[2])
		policyRatios = append(policyRatios, rps[3]/rps[1])
		enforceRatios = append(enforceRatios, rps[4]/rps[3])
		fmt.Printf("round %d: floor %.0f req/s, injector %.0f req/s, floor+patch %.0f req/s, %s %.0f req/s, %s %.0f req/s; injector/floor %.2f, injector/floor+patch %.2f, with policies/without %.3f, enforcement/mutation %.2f\n",
			r, rps[0], rps[1], rps[2], withPolicies, rps[3], enforcing, rps[4], rps[1]/rps[0], rps[1]/rps[2], rps[3]/rps[1], rps[4]/rps[3])
	}
	var results []result
	for _, t := range targets {
		slices.Sort(t.latencies)
		res := result{name: t.name, idleRSSKiB: t.idle, requests: len(t.latencies), errors: t.errors, rps: float64(len(t.latencies)) / t.elapsed.Seconds()}
		if len(t.latencies) > 0 {
			res.p50, res.p99 = t.latencies[len(t.latencies)*50/100], t.latencies[len(t.latencies)*99/100]
		}
		res.rssKiB, res.hwKiB = memory(t.cmd.Process.Pid)
		results = append(results, res)
	}
	fmt.Printf("\n%-22s %10s %10s %10s %8s %8s %10s %12s %10s\n", "server", "requests", "req/s", "p50", "p99", "errors", "idle MiB", "loaded MiB", "peak MiB")
	for _, r := range results {
		fmt.Printf("%-22s %10d %10.0f %10s %8s %8d %10.1f %12.1f %10.1f\n", r.name, r.requests, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errors,
			float64(r.idleRSSKiB)/1024, float64(r.rssKiB)/1024, float64(r.hwKiB)/1024)
	}
	floor, inj := results[0], results[1]
	slices.Sort(ratios)
	slices.Sort(patchRatios)
	ratio := ratios[len(ratios)/2]
	fmt.Printf("\ninjector/floor+patch throughput ratio: %.2f (median); floor+patch/floor: %.2f (what sending a %d-byte patch costs)",
		patchRatios[len(patchRatios)/2], results[2].rps/floor.rps, patchSize(patchFile))
	fmt.Printf("\ninjector/floor throughput ratio: %.2f (median of %d rounds, %.2f to %.2f); p99 ratio: %.2f; injector errors: %d; injector rss with %d serviceaccounts cached: %.1f MiB idle, %.1f MiB under load\n",
		ratio, len(ratios), ratios[0], ratios[len(ratios)-1], float64(inj.p99)/float64(floor.p99), inj.errors, n, float64(inj.idleRSSKiB)/1024, float64(inj.rssKiB)/1024)
	slices.Sort(policyRatios)
	fmt.Printf("%s/injector throughput ratio: %.3f (median of %d rounds, %.3f to %.3f); p99 %s against %s\n", withPolicies,
		policyRatios[len(policyRatios)/2], len(policyRatios), policyRatios[0], policyRatios[len(policyRatios)-1], results[3].p99.Round(time.Microsecond), inj.p99.Round(time.Microsecond))
	slices.Sort(enforceRatios)
	fmt.Printf("%s/%s throughput ratio: %.2f (median of %d rounds, %.2f to %.2f); p99 %s against %s\n", enforcing, withPolicies,
		enforceRatios[len(enforceRatios)/2], len(enforceRatios), enforceRatios[0], enforceRatios[len(enforceRatios)-1], results[4].p99.Round(time.Microsecond), results[3].p99.Round(time.Microsecond))
	if inj.errors > 0 || floor.errors > 0 || results[3].errors > 0 || results[4].errors > 0 {
		return errors.New("requests failed")
	}
	if ratio < minRatio {
		return fmt.Errorf("throughput ratio %.2f is below -min-ratio %.2f", ratio, minRatio)
	}
	return nil
}

// start runs a server in a child process and returns a client for it.
func start(name, mode string, ca *testpki.CA, certFile, keyFile string, concurrency, n int, extra ...string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-mode=" + mode, "-cert=" + certFile, "-key=" + keyFile, "-serviceaccounts=" + strconv.Itoa(n)}, extra...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop(cmd)
		return nil, fmt.Errorf("server did not start: %w", err)
	}
	wantPatch := mode == "injector"
	for _, e := range extra {
		wantPatch = wantPatch || strings.HasPrefix(e, "-patch-file=")
	}
	t := &target{name: name, cmd: cmd, wantPatch: wantPatch,
		url: "https://" + strings.TrimSpace(strings.TrimPrefix(line, "listening ")) + server.MutatePath,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency, DisableCompression: true,
		}}}
	t.idle, _ = memory(cmd.Process.Pid)
	return t, nil
}

// bodyOr returns what t is sent: its own body, else body.
func (t *target) bodyOr(body []byte) []byte {
	if t.body != nil {
		return t.body
	}
	return body
}

// storedReview returns the review with its pod as the patch in patchFile
// leaves it: what the enforcement webhook is sent.
func storedReview(body []byte, patchFile string) ([]byte, error) {
	raw, err := os.ReadFile(patchFile)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, err
	}
	var rev map[string]any
	if err := json.Unmarshal(body, &rev); err != nil {
		return nil, err
	}
	req := rev["request"].(map[string]any)
	obj, err := json.Marshal(req["object"])
	if err != nil {
		return nil, err
	}
	patched, err := p.Apply(obj)
	if err != nil {
		return nil, err
	}
	req["object"] = json.RawMessage(patched)
	return json.Marshal(rev)
}

// savePatch asks the injector for its patch for body and writes it to file.
func savePatch(t *target, body []byte, file string) error {
	resp, err := t.client.Post(t.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var r struct {
		Response struct {
			Patch []byte `json:"patch"`
		} `json:"response"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Response.Patch) == 0 {
		return fmt.Errorf("the injector answered no patch: %v", err)
	}
	return os.WriteFile(file, r.Response.Patch, 0o600)
}

func patchSize(file string) int {
	fi, err := os.Stat(file)
	if err != nil {
		return 0
	}
	return int(fi.Size())
}

// stop ends a child with SIGTERM, then SIGKILL.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
	}
}

// load sends reviews from concurrency workers for d and returns the
// latencies of the successful ones, the number of failures and the time taken.
func load(client *http.Client, url string, body []byte, wantPatch bool, concurrency int, d time.Duration) ([]time.Duration, int, time.Duration) {
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			bad := 0
			buf := make([]byte, 0, 8192)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					bad++
					continue
				}
				b := bytes.NewBuffer(buf[:0])
				_, err = b.ReadFrom(resp.Body)
				_ = resp.Body.Close()
				ok := err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(b.Bytes(), []byte(`"allowed":true`)) &&
					(!wantPatch || bytes.Contains(b.Bytes(), []byte(`"patch":`)))
				if !ok {
					bad++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs, time.Since(start)
}

// memory reads a process's resident and peak resident set in KiB.
func memory(pid int) (rss, hwm int) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}
