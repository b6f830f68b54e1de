package registry_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/pod-identity/injector/pkg/providers/builtin"
)

func build(t *testing.T, args ...string) ([]string, error) {
	t.Helper()
	s := builtin.New().WithArgs(args)
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	s.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	provs, err := s.Build(context.Background(), log)
	names := make([]string, len(provs))
	for i, p := range provs {
		names[i] = p.Name()
	}
	return names, err
}

func TestTheRegistry(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
		err  string
	}{
		{name: "every provider is on by default, in registry order", want: "aws,azure,gcp"},
		{name: "a provider can be turned off", args: []string{"--enable-azure=false"}, want: "aws,gcp"},
		{name: "all can be turned off", args: []string{"--enable-aws=false", "--enable-azure=false", "--enable-gcp=false"}, want: ""},
		{name: "a provider's bad flag names the provider", args: []string{"--azure-authority-host=http://x"}, err: "provider azure: --azure-authority-host"},
		{name: "a turned-off provider's flags are not checked", args: []string{"--enable-azure=false", "--azure-authority-host=http://x"}, want: "aws,gcp"},
		{name: "more API audiences than policy mode holds are refused", args: []string{"--kubernetes-api-audiences=" + strings.TrimSuffix(strings.Repeat("https://api.example.com,", 17), ",")},
			err: "--kubernetes-api-audiences names 17 audiences; at most 16"},
		{name: "as many as it holds are taken", args: []string{"--kubernetes-api-audiences=" + strings.TrimSuffix(strings.Repeat("https://api.example.com,", 16), ",")}, want: "aws,azure,gcp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			names, err := build(t, tt.args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(names, ",") != tt.want {
				t.Fatalf("= %v, %v; want %s", names, err, tt.want)
			}
		})
	}
	if got := strings.Join(builtin.New().Names(), ","); got != "aws,azure,gcp" {
		t.Errorf("Names() = %s", got)
	}
}

// TestDeclaredProviders: the providers of --provider-config files come
// after the compiled-in ones and have their --enable-<name> flag wherever
// it stands on the command line.
func TestDeclaredProviders(t *testing.T) {
	const ali, oci = "../../../deploy/providers/alibaba-rrsa.yaml", "../../../deploy/providers/oracle-oke.yaml"
	for _, tc := range []struct {
		name string
		args []string
		want string
		err  string
	}{
		{"both files add their providers after the compiled ones", []string{"--provider-config", ali, "--provider-config=" + oci}, "aws azure gcp alibaba oci", ""},
		{"an enable flag before the file that declares it counts", []string{"--enable-oci=false", "--provider-config=" + oci, "--enable-aws=false"}, "azure gcp", ""},
		{"an enable flag of a provider no file declares is unknown", []string{"--enable-oci=false"}, "", "unknown flag: --enable-oci"},
		{"a file that does not load is reported rather than the flag it would declare", []string{"--enable-oci=false", "--provider-config=missing.yaml"}, "", "read provider config: open missing.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := build(t, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(names, " ") != tc.want {
				t.Errorf("providers %v (%v), want %s", names, err, tc.want)
			}
		})
	}
}
