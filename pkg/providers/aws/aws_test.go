package aws

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pod-identity/injector/pkg/providers"
)

func request(saAnn map[string]string) providers.Request {
	return providers.Request{
		Namespace: "ns", PodName: "p",
		PodMeta:        &metav1.ObjectMeta{},
		PodSpec:        &corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
		ServiceAccount: &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: "ns", Annotations: saAnn}},
	}
}

func TestRoleARNValidation(t *testing.T) {
	tests := []struct {
		name, value string
		compose     bool
		want        string
	}{
		{name: "a commercial role ARN is accepted", value: "arn:aws:iam::123456789012:role/app", want: "arn:aws:iam::123456789012:role/app"},
		{name: "a role with a path is accepted", value: "arn:aws:iam::123456789012:role/team/a/app", want: "arn:aws:iam::123456789012:role/team/a/app"},
		{name: "surrounding spaces are trimmed", value: " arn:aws-cn:iam::123456789012:role/app ", want: "arn:aws-cn:iam::123456789012:role/app"},
		{name: "an unknown partition is refused", value: "arn:aws-moon:iam::123456789012:role/app"},
		{name: "a short account is refused", value: "arn:aws:iam::12345:role/app"},
		{name: "a user ARN is refused", value: "arn:aws:iam::123456789012:user/app"},
		{name: "a role name with a space is refused", value: "arn:aws:iam::123456789012:role/my app"},
		{name: "a bare name is refused without composing", value: "app"},
		{name: "a bare name is composed when allowed", value: "app", compose: true, want: "arn:aws-us-gov:iam::210987654321:role/app"},
		{name: "a role whose path is at IAM's limit of 512 is accepted", value: "arn:aws:iam::123456789012:role/" + strings.Repeat("p", 510) + "/app", want: "arn:aws:iam::123456789012:role/" + strings.Repeat("p", 510) + "/app"},
		{name: "a role whose path is over IAM's limit of 512 is refused", value: "arn:aws:iam::123456789012:role/" + strings.Repeat("p", 511) + "/app"},
		{name: "an ARN over IAM's limit of 2048 is refused, whatever its path", value: "arn:aws:iam::123456789012:role/" + strings.Repeat("p/", 1010) + "app"},
		{name: "a 250 KB ARN that matches the form is refused", value: "arn:aws:iam::111122223333:role/tenants/acme/" + strings.Repeat("a/", 125000) + "app"},
		{name: "a composed bare name over IAM's limits is refused", value: strings.Repeat("p/", 300) + "app", compose: true},
		{name: "a full ARN passes through when composing", value: "arn:aws:iam::123456789012:role/app", compose: true, want: "arn:aws:iam::123456789012:role/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{ComposeRoleARN: tt.compose, AccountID: "210987654321", DefaultRegion: "us-gov-west-1"}
			p, err := New(context.Background(), cfg, logrus.New())
			if err != nil {
				t.Fatal(err)
			}
			inj, err := p.Inject(request(map[string]string{"eks.amazonaws.com/role-arn": tt.value}))
			if tt.want == "" {
				if !providers.IsInvalid(err) {
					t.Fatalf("Inject() error = %v, want an invalid-configuration error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := inj.Env[0].Vars[0].Value; got != tt.want {
				t.Errorf("AWS_ROLE_ARN = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPartitionForRegion(t *testing.T) {
	for region, want := range map[string]string{
		"": "aws", "us-east-1": "aws", "cn-northwest-1": "aws-cn", "us-gov-east-1": "aws-us-gov",
		"us-iso-east-1": "aws-iso", "us-isob-east-1": "aws-iso-b", "eusc-de-east-1": "aws-eusc", "eu-isoe-west-1": "aws-iso-e", "us-isof-south-1": "aws-iso-f",
	} {
		if got := PartitionForRegion(region); got != want {
			t.Errorf("PartitionForRegion(%q) = %q, want %q", region, got, want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	// Nothing may leave loopback: no metadata service is asked here.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for name, cfg := range map[string]Config{
		"composing without an account or a metadata service": {ComposeRoleARN: true},
		"an expiration below the minimum":                    {TokenExpiration: 60},
		"an unknown partition":                               {Partition: "aws-moon"},
		"a relative mount path":                              {MountPath: "var/run"},
	} {
		if _, err := New(context.Background(), cfg, logrus.New()); err == nil {
			t.Errorf("%s: New() accepted it", name)
		}
	}
}

func TestPodIdentityAssociationsReloadAndKeepTheLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "associations.json")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file+".tmp", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"identities":[{"namespace":"a","serviceAccount":"one"}]}`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log, logged := logtest.NewNullLogger()
	a, err := WatchAssociations(ctx, file, log)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Has("a", "one") || a.Has("b", "two") {
		t.Fatal("initial set is wrong")
	}
	eventually := func(cond func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	write(`{"identities":[{"namespace":"b","serviceAccount":"two"}]}`)
	eventually(func() bool { return a.Has("b", "two") && !a.Has("a", "one") }, "the changed file was not reloaded")
	for _, e := range logged.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			t.Fatalf("a good reload logged %s: %s", e.Level, e.Message)
		}
	}
	logged.Reset()
	write(`{"identities":[{"namespace":"c"`)
	eventually(func() bool {
		for _, e := range logged.AllEntries() {
			if e.Level == logrus.WarnLevel && e.Message == "keeping the last good pod identity associations" {
				return true
			}
		}
		return false
	}, "the bad file was never read (no warning)")
	if !a.Has("b", "two") {
		t.Fatal("a bad file replaced the last good set")
	}
	write(`{"identities":[{"namespace":"d","serviceAccount":"four"}]}`)
	eventually(func() bool { return a.Has("d", "four") }, "a good file after a bad one was not loaded")

	if _, err := WatchAssociations(ctx, filepath.Join(dir, "missing.json"), logrus.New()); err == nil {
		t.Error("a missing file was accepted at start")
	}
}

// TestTheDefaultsAreTheSameThroughTheFlagsAndTheGoAPI: the server builds
// the provider from its flags' defaults, a Go caller from a zero Config;
// both must inject the audience and lifetime the README documents.
func TestTheDefaultsAreTheSameThroughTheFlagsAndTheGoAPI(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	plugin := NewPlugin()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	plugin.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	fromFlags, err := plugin.Build(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	fromGo, err := New(context.Background(), Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	r := request(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"})
	for name, p := range map[string]providers.Provider{"flags": fromFlags, "zero Config": fromGo} {
		t.Run(name, func(t *testing.T) {
			inj, err := p.Inject(r)
			if err != nil {
				t.Fatal(err)
			}
			tok := inj.Volumes[0].Projected.Sources[0].ServiceAccountToken
			if tok.Audience != "sts.amazonaws.com" || *tok.ExpirationSeconds != 86400 || tok.Path != "token" {
				t.Errorf("token audience %q, expiration %d, path %q; want sts.amazonaws.com, 86400, token", tok.Audience, *tok.ExpirationSeconds, tok.Path)
			}
			if inj.Mounts[0].MountPath != "/var/run/secrets/eks.amazonaws.com/serviceaccount" {
				t.Errorf("mount path %q", inj.Mounts[0].MountPath)
			}
		})
	}
	for _, p := range []providers.Provider{fromFlags, fromGo} {
		if got := p.AnnotationPrefixes(); len(got) != 1 || got[0] != "eks.amazonaws.com/" {
			t.Errorf("annotation prefixes %v, want the one the cache must keep", got)
		}
	}
	a, _ := fromFlags.Inject(r)
	b, _ := fromGo.Inject(r)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the flags' defaults and a zero Config inject differently:\n%+v\n%+v", a, b)
	}
}

func TestWindowsIsChosenOnlyWhenEveryRequiredTermAsksForIt(t *testing.T) {
	term := func(os string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/os", Operator: corev1.NodeSelectorOpIn, Values: []string{os}}}}
	}
	affinity := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	p, err := New(context.Background(), Config{}, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		spec     corev1.PodSpec
		windowsy bool
	}{
		{name: "a nodeSelector asking for windows", spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/os": "windows"}}, windowsy: true},
		{name: "every required term asking for windows", spec: corev1.PodSpec{Affinity: affinity(term("windows"), term("windows"))}, windowsy: true},
		{name: "one term of two asking for windows", spec: corev1.PodSpec{Affinity: affinity(term("windows"), term("linux"))}},
		{name: "no constraint", spec: corev1.PodSpec{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := request(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"})
			tt.spec.Containers = r.PodSpec.Containers
			r.PodSpec = &tt.spec
			inj, err := p.Inject(r)
			if err != nil {
				t.Fatal(err)
			}
			file := inj.Env[0].Vars[1].Value
			if got := strings.HasPrefix(file, `C:\`); got != tt.windowsy {
				t.Errorf("AWS_WEB_IDENTITY_TOKEN_FILE = %s, want the Windows path: %v", file, tt.windowsy)
			}
		})
	}
}

func TestTheTokenExpirationFlagIsCheckedAtItsBounds(t *testing.T) {
	for _, tt := range []struct {
		seconds int64
		valid   bool
	}{{599, false}, {600, true}, {86400, true}, {86401, false}} {
		t.Run(fmt.Sprint(tt.seconds), func(t *testing.T) {
			_, err := New(context.Background(), Config{TokenExpiration: tt.seconds}, logrus.New())
			if (err == nil) != tt.valid {
				t.Errorf("error = %v, want valid: %v", err, tt.valid)
			}
		})
	}
}

func TestAZeroConfigGivesPodIdentityTheDefaultEndpoint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "associations.json")
	if err := os.WriteFile(file, []byte(`{"identities":[{"namespace":"ns","serviceAccount":"sa"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := New(ctx, Config{PodIdentityConfig: file}, logrus.New())
	if err != nil {
		t.Fatal(err)
	}
	inj, err := p.Inject(request(nil))
	if err != nil || inj == nil {
		t.Fatalf("= %v, %v", inj, err)
	}
	if got := inj.Env[0].Vars[0]; got.Name != "AWS_CONTAINER_CREDENTIALS_FULL_URI" || got.Value != "http://169.254.170.23/v1/credentials" {
		t.Errorf("first variable %s=%s, want the default Pod Identity endpoint", got.Name, got.Value)
	}
}
