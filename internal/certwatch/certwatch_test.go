package certwatch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/pod-identity/injector/internal/testpki"
)

// quiet is a logger that keeps nothing.
func quiet() logrus.FieldLogger { l, _ := logtest.NewNullLogger(); return l }

func leaf(t *testing.T, c *tls.Certificate) *x509.Certificate {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestTheServingPairFollowsItsFiles(t *testing.T) {
	dir := t.TempDir()
	ca1, _ := testpki.NewCA("ca-1")
	ca2, _ := testpki.NewCA("ca-2")
	certFile, keyFile, err := ca1.WriteServing(dir, "first")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(certFile, keyFile, quiet())
	if err != nil {
		t.Fatal(err)
	}
	current := func() string { c, _ := r.GetCertificate(nil); return leaf(t, c).Subject.CommonName }
	if !r.Loaded() || current() != "first" {
		t.Fatalf("loaded %v, serving %q", r.Loaded(), current())
	}

	t.Run("an unchanged pair is not reloaded", func(t *testing.T) {
		if changed, err := r.w.reload(); changed || err != nil {
			t.Fatalf("reload = %v, %v", changed, err)
		}
	})
	t.Run("a half-written certificate keeps the current pair", func(t *testing.T) {
		if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if changed, err := r.w.reload(); changed || err == nil {
			t.Fatalf("reload = %v, %v; want an error", changed, err)
		}
		if current() != "first" {
			t.Fatalf("serving %q after a bad write", current())
		}
	})
	t.Run("a key that does not match keeps the current pair", func(t *testing.T) {
		c, _, _ := ca2.Issue("mismatch")
		_, k, _ := ca2.Issue("other")
		_ = os.WriteFile(certFile, c, 0o600)
		_ = os.WriteFile(keyFile, k, 0o600)
		if _, err := r.w.reload(); err == nil || current() != "first" {
			t.Fatalf("reload error %v, serving %q", err, current())
		}
	})
	t.Run("a whole new pair is served", func(t *testing.T) {
		if _, _, err := ca2.WriteServing(dir, "second"); err != nil {
			t.Fatal(err)
		}
		if changed, err := r.w.reload(); !changed || err != nil {
			t.Fatalf("reload = %v, %v", changed, err)
		}
		if current() != "second" {
			t.Fatalf("serving %q", current())
		}
	})
	t.Run("a missing file keeps the current pair", func(t *testing.T) {
		_ = os.Remove(keyFile)
		if _, err := r.w.reload(); err == nil || current() != "second" {
			t.Fatalf("reload error %v, serving %q", err, current())
		}
	})
}

func TestNewFailsWhenTheFirstLoadDoes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := New(bad, bad, quiet()); err == nil {
		t.Error("New accepted a file with no pair")
	}
	if _, err := New(filepath.Join(dir, "none"), bad, quiet()); err == nil {
		t.Error("New accepted a missing file")
	}
	if _, err := NewCAPool(bad, quiet()); err == nil {
		t.Error("NewCAPool accepted a file with no certificate")
	}
}

func TestTheClientCABundleFollowsItsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.crt")
	ca1, _ := testpki.NewCA("ca-1")
	ca2, _ := testpki.NewCA("ca-2")
	if err := os.WriteFile(file, ca1.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := NewCAPool(file, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if !verifies(t, p, ca1) || verifies(t, p, ca2) {
		t.Fatal("the first bundle is not the one in use")
	}
	_ = os.WriteFile(file, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o600)
	if _, err := p.w.reload(); err == nil || !verifies(t, p, ca1) {
		t.Fatalf("a bad bundle was taken: %v", err)
	}
	_ = os.WriteFile(file, ca2.PEM, 0o600)
	if changed, err := p.w.reload(); !changed || err != nil {
		t.Fatalf("reload = %v, %v", changed, err)
	}
	if verifies(t, p, ca1) || !verifies(t, p, ca2) {
		t.Fatal("the new bundle is not the one in use")
	}
}

// verifies says whether a client certificate issued by ca passes the pool.
func verifies(t *testing.T, p *CAPool, ca *testpki.CA) bool {
	t.Helper()
	c, _, err := ca.IssueClient("client")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(c)
	x, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = x.Verify(x509.VerifyOptions{Roots: p.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func TestWatchPicksUpAChangeWithoutACall(t *testing.T) {
	dir := t.TempDir()
	ca, _ := testpki.NewCA("ca")
	certFile, keyFile, _ := ca.WriteServing(dir, "first")
	r, err := New(certFile, keyFile, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Watch(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.WriteServing(dir, "second"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _ := r.GetCertificate(nil)
		if leaf(t, c).Subject.CommonName == "second" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the file change was never picked up (the poll is an hour: only the event can have done it)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
