// Package server serves the admission webhooks over TLS, and health and
// metrics over plain HTTP, and shuts both down gracefully.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/sirupsen/logrus"
	kwhhttp "github.com/slok/kubewebhook/v2/pkg/http"
	kwhlog "github.com/slok/kubewebhook/v2/pkg/log"
	kwhlogrus "github.com/slok/kubewebhook/v2/pkg/log/logrus"
	"github.com/slok/kubewebhook/v2/pkg/webhook"
)

// Paths the webhooks are served at.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// DefaultMaxRequestBytes is the largest AdmissionReview accepted: the API
// server's own request limit for an object is 3 MiB, and a review carries it once.
const DefaultMaxRequestBytes = 4 << 20

// HandlerConfig configures the admission handler.
type HandlerConfig struct {
	// Mutator and Validator are the webhooks, usually wrapped by
	// webhook.NewMeasuredWebhook.
	Mutator, Validator webhook.Webhook
	// Log receives kubewebhook's logs; its per-request line is debug level.
	Log *logrus.Entry
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes int64
}

// NewHandler returns the admission handler: kubewebhook's HTTP handler for
// each webhook, behind a guard that gives bad requests a clear 4xx answer.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	logger := quietLogger{kwhlogrus.NewLogrus(cfg.Log)}
	mux := http.NewServeMux()
	for path, wh := range map[string]webhook.Webhook{MutatePath: cfg.Mutator, ValidatePath: cfg.Validator} {
		h, err := kwhhttp.HandlerFor(kwhhttp.HandlerConfig{Webhook: wh, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("webhook handler %s: %w", path, err)
		}
		mux.Handle(path, guard(h, cfg.MaxRequestBytes))
	}
	return mux, nil
}

// guard answers what kubewebhook's handler would answer badly or not at
// all: wrong method, wrong content type, an oversized body, and a review
// without a request.
func guard(next http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			http.Error(w, fmt.Sprintf("content type %q: expected application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
			return
		}
		if r.ContentLength > limit {
			http.Error(w, fmt.Sprintf("request body of %d bytes: the limit is %d", r.ContentLength, limit), http.StatusRequestEntityTooLarge)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, fmt.Sprintf("request body over the limit of %d bytes", limit), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		case len(bytes.TrimSpace(body)) == 0:
			http.Error(w, "empty body: expected an AdmissionReview", http.StatusBadRequest)
			return
		}
		if err := hasRequest(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// hasRequest checks that body is a JSON object with a non-null "request"
// member. It reads tokens only as far as that member, which comes early in
// every review the API server sends.
func hasRequest(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("malformed AdmissionReview: expected a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("malformed AdmissionReview: %w", err)
		}
		if key, _ := t.(string); key == "request" {
			v, err := dec.Token()
			if err != nil {
				return fmt.Errorf("malformed AdmissionReview: %w", err)
			}
			if v != json.Delim('{') {
				return errors.New("AdmissionReview has no request")
			}
			return nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("malformed AdmissionReview: %w", err)
		}
	}
	return errors.New("AdmissionReview has no request")
}

// quietLogger turns kubewebhook's per-request info line into debug: a
// request that changes nothing says nothing at info.
type quietLogger struct{ kwhlog.Logger }

func (l quietLogger) Infof(format string, args ...any) { l.Logger.Debugf(format, args...) }
func (l quietLogger) WithValues(kv map[string]any) kwhlog.Logger {
	return quietLogger{l.Logger.WithValues(kv)}
}
func (l quietLogger) WithCtxValues(ctx context.Context) kwhlog.Logger {
	return quietLogger{l.Logger.WithCtxValues(ctx)}
}
