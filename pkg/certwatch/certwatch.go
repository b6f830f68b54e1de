// Package certwatch serves a TLS certificate that follows its files: when
// cert-manager (or anything else) rewrites the certificate and key in place,
// the next handshake uses the new pair, with no restart and no failed
// request. A pair that does not load (say, half-written) is passed over and
// the last good one stays in use.
package certwatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pod-identity/injector/internal/filewatch"
)

// Reloader holds the current certificate.
type Reloader struct {
	certFile, keyFile string
	log               logrus.FieldLogger
	cert              atomic.Pointer[tls.Certificate]
	raw               []byte
}

// New loads the pair once; it fails when the first load does.
func New(certFile, keyFile string, log logrus.FieldLogger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads the pair and swaps it in when it changed.
func (r *Reloader) reload() (bool, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return false, fmt.Errorf("read tls certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return false, fmt.Errorf("read tls key: %w", err)
	}
	raw := append(append([]byte{}, certPEM...), keyPEM...)
	if r.raw != nil && bytes.Equal(raw, r.raw) {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("tls key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&cert)
	r.raw = raw
	return true, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Loaded reports whether a certificate is loaded.
func (r *Reloader) Loaded() bool { return r.cert.Load() != nil }

// Watch reloads the pair whenever a file in their directories changes, and
// every poll interval as a fallback, until ctx ends.
func (r *Reloader) Watch(ctx context.Context, poll time.Duration) error {
	return filewatch.Watch(ctx, []string{filepath.Dir(r.certFile), filepath.Dir(r.keyFile)}, poll, func() {
		changed, err := r.reload()
		switch {
		case err != nil:
			r.log.WithError(err).Warn("keeping the current tls certificate")
		case changed:
			r.log.WithField("cert", r.certFile).Info("reloaded tls certificate")
		}
	}, r.log)
}
