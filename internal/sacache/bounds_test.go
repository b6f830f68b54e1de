package sacache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pod-identity/injector/pkg/providers"
)

func TestTrimKeepsOnlyTheKeysProvidersReadEachBounded(t *testing.T) {
	long := strings.Repeat("x", 3*providers.MaxValueBytes)
	obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns", Annotations: map[string]string{
		"eks.amazonaws.com/role-arn": long,
		"eks.amazonaws.com/junk-1":   "junk",
		"azure.workload.identity/x":  "kept by prefix",
		"azure.workload.identity/y":  strings.Repeat("y", providers.MaxValueBytes),
		"kubectl.kubernetes.io/last": "dropped",
		"eks.amazonaws.com/audience": "sts",
	}, Labels: map[string]string{"eks.amazonaws.com/role-arn": "label kept", "other": "dropped"}}}
	got, err := Trim([]string{"azure.workload.identity/"}, "eks.amazonaws.com/role-arn", "eks.amazonaws.com/audience")(obj)
	if err != nil {
		t.Fatal(err)
	}
	sa := got.(*corev1.ServiceAccount)
	want := map[string]int{"eks.amazonaws.com/role-arn": providers.MaxValueBytes + 1, "eks.amazonaws.com/audience": 3,
		"azure.workload.identity/x": len("kept by prefix"), "azure.workload.identity/y": providers.MaxValueBytes}
	if len(sa.Annotations) != len(want) {
		t.Errorf("annotations %v, want the keys %v", keysOf(sa.Annotations), want)
	}
	for k, n := range want {
		if len(sa.Annotations[k]) != n {
			t.Errorf("%s: %d bytes kept, want %d", k, len(sa.Annotations[k]), n)
		}
	}
	if len(sa.Labels) != 1 || sa.Labels["eks.amazonaws.com/role-arn"] != "label kept" {
		t.Errorf("labels %v", sa.Labels)
	}
	empty, _ := Trim(nil)(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "a", Annotations: map[string]string{"x/y": "z"}}})
	if a := empty.(*corev1.ServiceAccount).Annotations; a != nil {
		t.Errorf("with nothing to keep, annotations %v, want nil", a)
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestConfigIsCheckedAndDefaulted(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "a client is required") {
		t.Errorf("no client: %v", err)
	}
	client := fake.NewClientset()
	for _, bad := range []Config{{LookupGrace: -1}, {LookupQPS: -1}, {LookupBurst: -1}, {MissingTTL: -1}, {MaxMissing: -1}, {ReconnectAfter: -1}} {
		bad.Client = client
		if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	c, err := New(Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Client: client, LookupGrace: DefaultLookupGrace, LookupQPS: DefaultLookupQPS, LookupBurst: DefaultLookupBurst,
		MissingTTL: DefaultMissingTTL, MaxMissing: DefaultMaxMissing, ReconnectAfter: DefaultReconnectAfter}
	if c.cfg.LookupGrace != want.LookupGrace || c.cfg.LookupQPS != want.LookupQPS || c.cfg.LookupBurst != want.LookupBurst ||
		c.cfg.MissingTTL != want.MissingTTL || c.cfg.MaxMissing != want.MaxMissing || c.cfg.ReconnectAfter != want.ReconnectAfter {
		t.Errorf("defaults %+v", c.cfg)
	}
	set, err := New(Config{Client: client, LookupGrace: 2, LookupQPS: 3, LookupBurst: 4, MissingTTL: 5, MaxMissing: 6, ReconnectAfter: 7})
	if err != nil {
		t.Fatal(err)
	}
	if c := set.cfg; c.LookupGrace != 2 || c.LookupQPS != 3 || c.LookupBurst != 4 || c.MissingTTL != 5 || c.MaxMissing != 6 || c.ReconnectAfter != 7 {
		t.Errorf("settings replaced by defaults: %+v", c)
	}
}

func TestMissingEntriesExpireAndAreForgotten(t *testing.T) {
	m := newMissingSet(time.Hour, 2)
	m.add("ns/a")
	if !m.has("ns/a") || m.has("ns/b") {
		t.Fatal("has")
	}
	m.forget("ns/a")
	if m.has("ns/a") || m.Len() != 0 {
		t.Fatal("forget")
	}
	short := newMissingSet(20*time.Millisecond, 2)
	short.add("ns/a")
	short.add("ns/b")
	short.add("ns/c") // full of fresh entries: not remembered
	if short.has("ns/c") || short.Len() != 2 {
		t.Fatalf("a full set took another entry: %d", short.Len())
	}
	time.Sleep(30 * time.Millisecond)
	if short.has("ns/a") {
		t.Fatal("an expired entry is still answered")
	}
	short.add("ns/d") // room again once the expired ones go
	if !short.has("ns/d") {
		t.Fatal("an entry was refused although the others had expired")
	}
}

func TestTheLookupBudgetIsSharedFairly(t *testing.T) {
	f := newFairLimiter(1, 8)
	if f.burst != 2 || f.unknown.Burst() != 2 || f.all.Burst() != 8 {
		t.Fatalf("shares: namespace burst %d, unknown %d, all %d; want 2, 2 and 8", f.burst, f.unknown.Burst(), f.all.Burst())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for range 2 {
		if err := f.wait(ctx, "busy", true); err != nil {
			t.Fatalf("within the namespace's share: %v", err)
		}
	}
	err := f.wait(ctx, "busy", true)
	if err == nil || !strings.Contains(err.Error(), "namespace busy spent its share") {
		t.Fatalf("past the namespace's share: %v", err)
	}
	// Another namespace still has its share, and made-up ones share one.
	if err := f.wait(context.Background(), "quiet", true); err != nil {
		t.Fatalf("another namespace: %v", err)
	}
	for i := range 2 {
		if err := f.wait(context.Background(), fmt.Sprintf("made-up-%d", i), false); err != nil {
			t.Fatalf("unknown namespaces' share: %v", err)
		}
	}
	if len(f.byNS) != 2 {
		t.Errorf("limiters for %d namespaces, want 2: unknown namespaces get none", len(f.byNS))
	}
	if err := f.wait(ctx, "made-up-2", false); err == nil {
		t.Error("unknown namespaces together spent more than one share")
	}
	if f.unknown.Limit() != 0.25 || f.qps != 0.25 || f.all.Limit() != 1 {
		t.Errorf("rates: unknown %v, a namespace %v, all %v; want a quarter each, and the whole", f.unknown.Limit(), f.qps, f.all.Limit())
	}
	tiny := newFairLimiter(1, 1)
	if tiny.burst != 1 {
		t.Errorf("a burst below the share count gives each namespace %d, want 1", tiny.burst)
	}
}

func TestIdleNamespaceLimitersAreDroppedFirst(t *testing.T) {
	f := newFairLimiter(1e9, 1<<20)
	for i := range maxNamespaceLimiters {
		f.byNS[fmt.Sprintf("ns-%d", i)] = newFairLimiter(1e9, 1<<20).unknown // full: idle
	}
	if err := f.wait(t.Context(), "new", true); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.byNS["new"]; !ok || len(f.byNS) != 1 {
		t.Errorf("%d limiters after a new namespace came past the bound, want the idle ones dropped and the new one kept", len(f.byNS))
	}
}

func TestBusyNamespaceLimitersAreKeptAndNoMoreAdded(t *testing.T) {
	f := newFairLimiter(1e9, 8)
	for i := range maxNamespaceLimiters {
		busy := rate.NewLimiter(0.001, 2)
		busy.Allow() // a token spent, and none back for a long while
		f.byNS[fmt.Sprintf("ns-%d", i)] = busy
	}
	if err := f.wait(t.Context(), "new", true); err != nil {
		t.Fatal(err)
	}
	if _, kept := f.byNS["new"]; kept || len(f.byNS) != maxNamespaceLimiters {
		t.Errorf("%d limiters (new one kept: %t): a full map of busy limiters takes no more", len(f.byNS), kept)
	}
}

// TestTheCacheHearsFromTheAPIServerThroughItsWatch: watch events, not
// only lists, keep the cache's age down.
func TestTheCacheHearsFromTheAPIServerThroughItsWatch(t *testing.T) {
	client := fake.NewClientset()
	c, err := New(Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Start(ctx)
	if !c.WaitForSync(ctx) {
		t.Fatal("never synced")
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := client.CoreV1().ServiceAccounts("ns").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch event never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if a := c.Age(); a >= 250*time.Millisecond {
		t.Errorf("age %s after a watch event: the event did not count as hearing from the API server", a)
	}
}

func TestAgeAndBrokenWatch(t *testing.T) {
	c, err := New(Config{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Age() != 0 {
		t.Errorf("age before anything was heard: %s", c.Age())
	}
	c.markFresh()
	time.Sleep(10 * time.Millisecond)
	if a := c.Age(); a < 10*time.Millisecond || a > time.Minute {
		t.Errorf("age %s", a)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	c.markBroken(canceled, errors.New("stopping"))
	if c.broken.Load() != 0 {
		t.Error("a generation being stopped counted as a broken watch")
	}
	c.markBroken(context.Background(), errors.New("refused"))
	first := c.broken.Load()
	if first == 0 {
		t.Fatal("a failure was not recorded")
	}
	c.markBroken(context.Background(), errors.New("refused again"))
	if c.broken.Load() != first {
		t.Error("a second failure moved when the watch broke")
	}
	c.markFresh()
	if c.broken.Load() != 0 {
		t.Error("an answer did not clear the broken watch")
	}
}
