package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// quiet is a logger that keeps nothing.
func quiet() logrus.FieldLogger { l, _ := logtest.NewNullLogger(); return l }

// waitCalls waits until calls reaches n, or fails.
func waitCalls(t *testing.T, calls *atomic.Int32, n int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("onChange ran %d times, want %d", calls.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestABurstOfChangesIsOneCall(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, []string{dir, dir}, 0, func() { calls.Add(1) }, quiet()); err != nil {
		t.Fatal(err)
	}
	// As a Secret volume swaps its files: several writes in a moment.
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitCalls(t, &calls, 1)
	time.Sleep(3 * settle)
	if n := calls.Load(); n != 1 {
		t.Fatalf("a burst of 5 writes gave %d calls, want 1", n)
	}
}

func TestThePollRunsWithoutEvents(t *testing.T) {
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Watch(ctx, []string{t.TempDir()}, 10*time.Millisecond, func() { calls.Add(1) }, quiet()); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, &calls, 3)
}

func TestNothingRunsAfterTheContextEnds(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	if err := Watch(ctx, []string{dir}, 5*time.Millisecond, func() { calls.Add(1) }, quiet()); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, &calls, 1)
	cancel()
	time.Sleep(20 * time.Millisecond)
	n := calls.Load()
	_ = os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
	time.Sleep(3 * settle)
	if calls.Load() != n {
		t.Fatalf("onChange ran %d more times after the context ended", calls.Load()-n)
	}
}

func TestAMissingDirectoryIsAnError(t *testing.T) {
	if err := Watch(context.Background(), []string{filepath.Join(t.TempDir(), "absent")}, 0, func() {}, quiet()); err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}
