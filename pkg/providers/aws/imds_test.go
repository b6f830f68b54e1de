package aws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/pod-identity/injector/pkg/providers"
)

// fakeIMDS serves the EC2 instance metadata service's IMDSv2 token and
// instance identity document, as EC2 does, and counts the documents served.
func fakeIMDS(t *testing.T, account, region string) *atomic.Int32 {
	t.Helper()
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "missing ttl", http.StatusBadRequest)
				return
			}
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
			_, _ = w.Write([]byte("imds-token"))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/dynamic/instance-identity/document":
			if r.Header.Get("X-aws-ec2-metadata-token") != "imds-token" {
				http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
				return
			}
			served.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"accountId":"` + account + `","architecture":"x86_64","availabilityZone":"` + region + `a","imageId":"ami-0123456789abcdef0","instanceId":"i-0123456789abcdef0","instanceType":"m6i.large","pendingTime":"2026-11-29T08:00:00Z","privateIp":"10.0.0.12","region":"` + region + `","version":"2017-09-30"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	return &served
}

func TestComposedRoleARNsTakeTheAccountFromTheInstanceMetadataService(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	for _, c := range []struct {
		name      string
		cfg       Config
		wantARN   string
		wantAsked int32
	}{
		{"the account and, from the instance's region, the partition", Config{ComposeRoleARN: true},
			"arn:aws-cn:iam::444455556666:role/reader", 1},
		{"the region flag still decides the partition", Config{ComposeRoleARN: true, DefaultRegion: "us-west-2"},
			"arn:aws:iam::444455556666:role/reader", 1},
		{"an account flag is used without asking", Config{ComposeRoleARN: true, AccountID: "111122223333"},
			"arn:aws:iam::111122223333:role/reader", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			asked := fakeIMDS(t, "444455556666", "cn-north-1")
			p, err := New(context.Background(), c.cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			inj, err := p.Inject(request(map[string]string{"eks.amazonaws.com/role-arn": "reader"}))
			if err != nil {
				t.Fatal(err)
			}
			if got := envValue(inj, "AWS_ROLE_ARN"); got != c.wantARN {
				t.Errorf("AWS_ROLE_ARN %q, want %q", got, c.wantARN)
			}
			if n := asked.Load(); n != c.wantAsked {
				t.Errorf("the metadata service was asked %d times, want %d", n, c.wantAsked)
			}
		})
	}
}

func TestAnUnreachableMetadataServiceStopsStartUpWithTheFix(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no metadata here", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	_, err := New(context.Background(), Config{ComposeRoleARN: true}, log)
	if err == nil || !strings.Contains(err.Error(), "--aws-compose-role-arn without --aws-account-id") || !strings.Contains(err.Error(), "set --aws-account-id") {
		t.Fatalf("error %v: want one that says what failed and what to set", err)
	}
}

// envValue returns the value the injection gives a variable.
func envValue(inj *providers.Injection, name string) string {
	for _, g := range inj.Env {
		for _, e := range g.Vars {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}
