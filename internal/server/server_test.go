package server_test

import (
	"context"
	"crypto/tls"
	"github.com/pod-identity/injector/internal/testenv"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/server"
)

func TestReadinessAndGracefulShutdown(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	ca, certs := servingCerts(t)
	const delay = time.Second
	cfg := server.Config{ShutdownDelay: delay, ShutdownTimeout: 5 * time.Second}
	tc, err := cfg.TLSConfig(certs.GetCertificate)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var started atomic.Bool
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			_, _ = w.Write([]byte("served"))
			return
		}
		started.Store(true)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	var synced atomic.Bool
	ready := func() error {
		if !synced.Load() {
			return errFake("cache not synced")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "pod_identity_test_total", Help: "test"}))
	srv := server.New(cfg, tc, slow, reg, ready, log)
	wl, _ := net.Listen("tcp", "127.0.0.1:0")
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, wl, ol) }()
	ops := "http://" + ol.Addr().String()
	status := func(path string) (int, string) {
		resp, err := http.Get(ops + path)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, func() bool { c, _ := status("/healthz"); return c == 200 }, "healthz")
	if c, body := status("/readyz"); c != 503 || !strings.Contains(body, "cache not synced") {
		t.Errorf("readyz before sync = %d %q", c, body)
	}
	synced.Store(true)
	if c, _ := status("/readyz"); c != 200 {
		t.Errorf("readyz after sync = %d", c)
	}
	if _, body := status("/metrics"); !strings.Contains(body, "pod_identity_test_total") {
		t.Errorf("metrics lack the registry's metric")
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	inflight := make(chan string, 1)
	go func() {
		resp, err := client.Post("https://"+wl.Addr().String()+"/", "application/json", strings.NewReader("{}"))
		if err != nil {
			inflight <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		inflight <- string(b)
	}()
	waitFor(t, started.Load, "the in-flight request")
	cancel() // SIGTERM
	sigterm := time.Now()
	waitFor(t, func() bool { c, _ := status("/readyz"); return c == 503 }, "unready after SIGTERM")
	// Unready but still serving: endpoints take a moment to drop the pod,
	// and the API server's reviews sent meanwhile must be answered.
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
	resp, err := fresh.Post("https://"+wl.Addr().String()+"/fast", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("a new review during the shutdown delay was not served: %v", err)
	}
	_ = resp.Body.Close()
	close(release)
	if got := <-inflight; got != "done" {
		t.Errorf("in-flight review = %q, want it drained", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve() = %v", err)
	}
	if took := time.Since(sigterm); took < delay {
		t.Errorf("Serve returned %s after SIGTERM, before the shutdown delay of %s", took, delay)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

func waitFor(t *testing.T, cond func() bool, what string) { testenv.WaitFor(t, what, cond) }
