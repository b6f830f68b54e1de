package server_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

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
