package aws_test

import (
	"path/filepath"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/aws"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestFixtures runs the aws golden fixtures through the test kit, so
// that this package's own tests hold the behaviour they pin down.
func TestFixtures(t *testing.T) {
	providertest.Run(t, filepath.Join("..", "..", "..", "test", "fixtures", "aws"), providertest.RendererFor(aws.NewPlugin))
}
