package mutate_test

import (
	"path/filepath"
	"testing"

	"github.com/pod-identity/injector/internal/fixturetest"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestFixtures runs every golden fixture (each cloud and several at once)
// through the engine with the compiled providers.
func TestFixtures(t *testing.T) {
	providertest.Run(t, filepath.Join("..", "..", "test", "fixtures"), fixturetest.Mutate)
}
