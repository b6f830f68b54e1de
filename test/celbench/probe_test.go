package celbench

import (
	"os"
	"strings"
	"testing"
)

// BenchmarkProbe evaluates the expressions in $CELBENCH_PROBE (one per
// line) against the shipped policy's variables: to try a rewrite.
func BenchmarkProbe(b *testing.B) {
	probes := os.Getenv("CELBENCH_PROBE")
	if probes == "" {
		b.Skip("CELBENCH_PROBE is not set")
	}
	p := mutatingPolicy(b)
	params := identityParameters(b)
	o := pod()
	for i, expr := range strings.Split(probes, "\n") {
		if strings.TrimSpace(expr) == "" {
			continue
		}
		e := compile(b, p, expr)
		b.Run(string(rune('a'+i)), func(b *testing.B) {
			for b.Loop() {
				e.run(b, o, params)
			}
		})
	}
}
