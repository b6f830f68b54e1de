package admission_test

import (
	"path/filepath"
	"testing"

	"github.com/pod-identity/injector/internal/fixturetest"
)

// TestWebhooksAgreeWithFixtures runs every fixture pod through the
// webhooks behind the HTTP handler, so that this package's tests hold what
// the fixtures pin down.
func TestWebhooksAgreeWithFixtures(t *testing.T) {
	fixturetest.RunWebhook(t, filepath.Join("..", "..", "test", "fixtures"))
}
