package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pod-identity/injector/pkg/providers/registry"
)

func TestTheAPIServersIssuerCountsAsAnAPIAudience(t *testing.T) {
	const issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
	many := make([]string, registry.MaxAPIAudiences)
	for i := range many {
		many[i] = "https://api-" + strings.Repeat("x", i+1)
	}
	for _, tc := range []struct {
		name      string
		discovery string // the body of /.well-known/openid-configuration; "" answers 403
		audiences []string
		want      []string
		warned    bool
	}{
		{"an issuer the audiences do not name is added", `{"issuer":"` + issuer + `"}`, registry.DefaultAPIAudiences,
			append(slices.Clone(registry.DefaultAPIAudiences), issuer), false},
		{"an issuer the audiences name, however written, is not added again", `{"issuer":"https://kubernetes.default.svc.cluster.local/"}`, registry.DefaultAPIAudiences,
			registry.DefaultAPIAudiences, false},
		{"an issuer that would pass the bound on audiences is left out, with a warning", `{"issuer":"` + issuer + `"}`, many, many, true},
		{"an API server that does not answer leaves the audiences as they are, with a warning", "", registry.DefaultAPIAudiences, registry.DefaultAPIAudiences, true},
		{"a discovery document without an issuer leaves the audiences as they are, with a warning", `{"jwks_uri":"https://example/keys"}`, registry.DefaultAPIAudiences, registry.DefaultAPIAudiences, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/.well-known/openid-configuration" || tc.discovery == "" {
					http.Error(w, `{"kind":"Status","code":403}`, http.StatusForbidden)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.discovery))
			}))
			defer srv.Close()
			client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			log, hook := logtest.NewNullLogger()
			got := withAPIServerIssuer(context.Background(), client, slices.Clone(tc.audiences), log)
			if !slices.Equal(got, tc.want) {
				t.Errorf("audiences %v, want %v", got, tc.want)
			}
			warned := false
			for _, e := range hook.AllEntries() {
				warned = warned || e.Level == logrus.WarnLevel
			}
			if warned != tc.warned {
				t.Errorf("warned %t, want %t (%v)", warned, tc.warned, hook.AllEntries())
			}
		})
	}
}
