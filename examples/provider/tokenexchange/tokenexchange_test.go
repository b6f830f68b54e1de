package tokenexchange_test

import (
	"testing"

	"github.com/pod-identity/injector/examples/provider/tokenexchange"
	"github.com/pod-identity/injector/pkg/providers/providertest"
)

// TestFixtures runs every case under testdata/fixtures through the engine
// with only this provider compiled in, and the conformance checks.
func TestFixtures(t *testing.T) {
	providertest.Run(t, "testdata/fixtures", providertest.RendererFor(tokenexchange.NewPlugin))
}
