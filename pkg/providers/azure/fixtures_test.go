package azure_test

import (
	"path/filepath"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/azure"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestFixtures runs the azure golden fixtures through the test kit, so
// that this package's own tests hold the behaviour they pin down.
func TestFixtures(t *testing.T) {
	providertest.Run(t, filepath.Join("..", "..", "..", "test", "fixtures", "azure"), providertest.RendererFor(azure.NewPlugin))
}
