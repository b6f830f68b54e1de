package sacache

import (
	"fmt"
	"testing"
	"time"
)

func TestTheMemoryOfMissingServiceAccountsIsBounded(t *testing.T) {
	m := newMissingSet(time.Hour, 10)
	for i := range 100 {
		m.add(fmt.Sprintf("ns/sa-%d", i))
	}
	if m.Len() != 10 {
		t.Fatalf("%d remembered, want the bound of 10", m.Len())
	}
	expired := newMissingSet(time.Nanosecond, 10)
	for i := range 100 {
		expired.add(fmt.Sprintf("ns/sa-%d", i))
		time.Sleep(time.Microsecond)
	}
	if expired.has("ns/sa-99") || expired.Len() > 10 {
		t.Fatalf("expired entries kept: %d", expired.Len())
	}
}

func TestNamespaceLimitersAreBounded(t *testing.T) {
	f := newFairLimiter(1e9, 1<<20)
	for i := range maxNamespaceLimiters * 2 {
		_ = f.wait(t.Context(), fmt.Sprintf("ns-%d", i), true)
	}
	if len(f.byNS) > maxNamespaceLimiters {
		t.Fatalf("%d namespace limiters, want at most %d", len(f.byNS), maxNamespaceLimiters)
	}
}
