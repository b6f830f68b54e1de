package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/certwatch"
	"github.com/pod-identity/injector/internal/sacache"
	"github.com/pod-identity/injector/internal/testpki"
)

// servingCerts issues a serving certificate from a fresh CA into a
// temporary folder and loads it as the server does.
func servingCerts(t *testing.T) (*testpki.CA, *certwatch.Reloader) {
	t.Helper()
	ca, err := testpki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(t.TempDir(), "webhook")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	certs, err := certwatch.New(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	return ca, certs
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

func sleep() { time.Sleep(20 * time.Millisecond) }

// serveTLS serves h on a loopback port with exactly tc, and returns its URL.
func serveTLS(t *testing.T, h http.Handler, tc *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: tc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String()
}

// syncedCache starts a ServiceAccount cache for the test and waits until
// it has listed everything.
func syncedCache(t *testing.T, cfg sacache.Config) *sacache.Cache {
	t.Helper()
	sas, err := sacache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sas.Start(ctx)
	if !sas.WaitForSync(ctx) {
		t.Fatal("cache never synced")
	}
	return sas
}
