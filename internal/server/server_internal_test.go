package server

import (
	"context"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestEveryConnectionHasTimeouts(t *testing.T) {
	webhook, ops := New(Config{}, nil, nil, nil, nil, logrus.New()).httpServers()
	for name, s := range map[string]struct{ header, read, write, idle time.Duration }{
		"webhook": {webhook.ReadHeaderTimeout, webhook.ReadTimeout, webhook.WriteTimeout, webhook.IdleTimeout},
		"ops":     {ops.ReadHeaderTimeout, ops.ReadTimeout, ops.WriteTimeout, ops.IdleTimeout},
	} {
		if s.header != 10*time.Second || s.read != 30*time.Second || s.write != 30*time.Second || s.idle != 90*time.Second {
			t.Errorf("%s server timeouts %+v, want 10 s for headers, 30 s to read and write, 90 s idle", name, s)
		}
	}
}

func TestRunSaysWhichAddressItCannotListenOn(t *testing.T) {
	for _, cfg := range []Config{{Address: "256.0.0.1:1", MetricsAddress: "127.0.0.1:0"}, {Address: "127.0.0.1:0", MetricsAddress: "256.0.0.1:2"}} {
		err := New(cfg, nil, nil, nil, nil, logrus.New()).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "256.0.0.1") {
			t.Errorf("Run(%+v) = %v, want an error naming the address", cfg, err)
		}
	}
}

func TestNegativeShutdownDurationsAreRefused(t *testing.T) {
	for _, c := range []Config{{ShutdownDelay: -time.Second}, {ShutdownTimeout: -time.Second}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (&Config{ShutdownDelay: 0, ShutdownTimeout: 0}).Validate(); err != nil {
		t.Errorf("zero durations refused: %v", err)
	}
}

func TestTheGCTargetYieldsToGOGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	t.Setenv("GOGC", "")
	_ = os.Unsetenv("GOGC")
	SetGCPercent(50)
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("without GOGC the target is %d, want 50", got)
	}
	SetGCPercent(0)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("a zero --gc-percent changed the target to %d", got)
	}
	t.Setenv("GOGC", "200")
	SetGCPercent(50)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, --gc-percent changed the target to %d", got)
	}
}

// TestNetHTTPMessagesGoThroughTheStructuredLog: what net/http says on its
// own (a client that failed the TLS handshake) becomes one warning entry
// of the server's logger, not a text line of the standard logger.
func TestNetHTTPMessagesGoThroughTheStructuredLog(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	s := &Server{log: log}
	web, ops := s.httpServers()
	for _, srv := range []*http.Server{web, ops} {
		srv.ErrorLog.Printf("http: TLS handshake error from 127.0.0.1:5000: tls: client didn't provide a certificate")
	}
	entries := hook.AllEntries()
	if len(entries) != 2 || entries[0].Level != logrus.WarnLevel || entries[0].Data["source"] != "net/http" ||
		entries[0].Message != "http: TLS handshake error from 127.0.0.1:5000: tls: client didn't provide a certificate" {
		t.Fatalf("entries %+v", entries)
	}
}
