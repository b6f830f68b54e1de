package server_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/pod-identity/injector/internal/server"
)

func TestTLSSettings(t *testing.T) {
	tests := []struct {
		name      string
		cfg       server.Config
		min       uint16
		suites    []uint16
		errSaying string
	}{
		{name: "the default minimum is TLS 1.2 with Go's suites", cfg: server.Config{}, min: tls.VersionTLS12},
		{name: "TLS 1.3 can be required", cfg: server.Config{TLSMinVersion: "1.3"}, min: tls.VersionTLS13},
		{name: "named suites are used in order", cfg: server.Config{TLSCipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", " TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}},
			min: tls.VersionTLS12, suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}},
		{name: "an old version is refused", cfg: server.Config{TLSMinVersion: "1.0"}, errSaying: `--tls-min-version "1.0": expected 1.2 or 1.3`},
		{name: "an insecure or unknown suite is refused", cfg: server.Config{TLSCipherSuites: []string{"TLS_RSA_WITH_RC4_128_SHA"}}, errSaying: `--tls-cipher-suites "TLS_RSA_WITH_RC4_128_SHA"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := tt.cfg.TLSConfig(nil)
			if tt.errSaying != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSaying) {
					t.Fatalf("error = %v, want one saying %q", err, tt.errSaying)
				}
				if tt.cfg.Validate() == nil {
					t.Error("Validate accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.MinVersion != tt.min || len(tc.CipherSuites) != len(tt.suites) {
				t.Fatalf("min %x suites %v", tc.MinVersion, tc.CipherSuites)
			}
			for i := range tt.suites {
				if tc.CipherSuites[i] != tt.suites[i] {
					t.Errorf("suite %d = %x, want %x", i, tc.CipherSuites[i], tt.suites[i])
				}
			}
		})
	}
}
