package builtin_test

import (
	"strings"
	"testing"

	"github.com/pod-identity/injector/pkg/providers/builtin"
)

func TestTheCompiledInProvidersComeInOrder(t *testing.T) {
	if got := strings.Join(builtin.New().Names(), ","); got != "aws,azure,gcp" {
		t.Errorf("names %s", got)
	}
}
