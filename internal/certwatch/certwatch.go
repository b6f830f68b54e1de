// Package certwatch serves TLS material that follows its files: when
// cert-manager (or anything else) rewrites the serving certificate and key,
// or the bundle of CAs that client certificates are checked against, the
// next handshake uses the new files, with no restart and no failed request.
// Files that do not load (say, half-written) are passed over and the last
// good version stays in use.
package certwatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/filewatch"
)

// watched holds the last good value parsed from a set of files.
type watched[T any] struct {
	files []string
	what  string
	parse func(contents [][]byte) (*T, error)
	log   logrus.FieldLogger

	cur atomic.Pointer[T]
	mu  sync.Mutex
	raw []byte
}

// reload reads the files and swaps in what they hold when it changed.
func (w *watched[T]) reload() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	contents := make([][]byte, len(w.files))
	var all []byte
	for i, f := range w.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return false, fmt.Errorf("read %s %s: %w", w.what, f, err)
		}
		contents[i] = b
		all = append(all, b...)
	}
	if w.raw != nil && bytes.Equal(all, w.raw) {
		return false, nil
	}
	v, err := w.parse(contents)
	if err != nil {
		return false, err
	}
	w.cur.Store(v)
	w.raw = all
	return true, nil
}

// watch reloads whenever a file in the files' directories changes, and
// every poll interval as a fallback, until ctx ends.
func (w *watched[T]) watch(ctx context.Context, poll time.Duration) error {
	dirs := make([]string, len(w.files))
	for i, f := range w.files {
		dirs[i] = filepath.Dir(f)
	}
	return filewatch.Watch(ctx, dirs, poll, func() {
		changed, err := w.reload()
		switch {
		case err != nil:
			w.log.WithError(err).Warn("keeping the current " + w.what)
		case changed:
			w.log.WithField("file", w.files[0]).Info("reloaded " + w.what)
		}
	}, w.log)
}

// Reloader holds the current serving certificate.
type Reloader struct{ w *watched[tls.Certificate] }

// New loads the pair once; it fails when the first load does.
func New(certFile, keyFile string, log logrus.FieldLogger) (*Reloader, error) {
	r := &Reloader{&watched[tls.Certificate]{files: []string{certFile, keyFile}, what: "tls certificate", log: log,
		parse: func(c [][]byte) (*tls.Certificate, error) {
			cert, err := tls.X509KeyPair(c[0], c[1])
			if err != nil {
				return nil, fmt.Errorf("tls key pair %s, %s: %w", certFile, keyFile, err)
			}
			return &cert, nil
		}}}
	if _, err := r.w.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.w.cur.Load(), nil
}

// Loaded reports whether a certificate is loaded.
func (r *Reloader) Loaded() bool { return r.w.cur.Load() != nil }

// Watch reloads the pair whenever a file in their directories changes, and
// every poll interval as a fallback, until ctx ends.
func (r *Reloader) Watch(ctx context.Context, poll time.Duration) error { return r.w.watch(ctx, poll) }

// CAPool holds the current bundle of CA certificates.
type CAPool struct{ w *watched[x509.CertPool] }

// NewCAPool loads the PEM bundle once; it fails when the first load does
// or the file holds no certificate.
func NewCAPool(file string, log logrus.FieldLogger) (*CAPool, error) {
	p := &CAPool{&watched[x509.CertPool]{files: []string{file}, what: "client CA bundle", log: log,
		parse: func(c [][]byte) (*x509.CertPool, error) {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(c[0]) {
				return nil, fmt.Errorf("client CA bundle %s: %w", file, errNoCertificate)
			}
			return pool, nil
		}}}
	if _, err := p.w.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

var errNoCertificate = errors.New("no PEM certificate in it")

// Pool returns the current bundle.
func (p *CAPool) Pool() *x509.CertPool { return p.w.cur.Load() }

// Watch reloads the bundle when its directory changes, and every poll
// interval as a fallback, until ctx ends.
func (p *CAPool) Watch(ctx context.Context, poll time.Duration) error { return p.w.watch(ctx, poll) }
