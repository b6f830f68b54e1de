package declarative_test

import (
	"path/filepath"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/aws"
	"github.com/pod-identity/injector/pkg/providers/azure"
	"github.com/pod-identity/injector/pkg/providers/gcp"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestFixtures runs the shipped examples' fixtures (deploy/providers) and
// the config-error fixtures through the test kit and its conformance
// checks, as `injector mutate --provider-config` renders them.
func TestFixtures(t *testing.T) {
	providertest.Run(t, filepath.Join("..", "..", "..", "test", "fixtures", "declarative"), providertest.RendererFor(aws.NewPlugin, azure.NewPlugin, gcp.NewPlugin))
}
