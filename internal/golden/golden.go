// Package golden compares test output with files kept under test/fixtures,
// and rewrites them when the tests run with GOLDEN_UPDATE=1.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Update is set by `GOLDEN_UPDATE=1 go test ./...`: expectations are
// rewritten instead of compared. Review every rewritten file before
// committing it. (An environment variable rather than a flag: a flag would
// have to be defined in every test binary that `go test ./...` runs.)
var Update = os.Getenv("GOLDEN_UPDATE") == "1"

// Check compares got with the file at path. An expectation of "nothing" is an
// absent file: when updating, an empty got removes the file.
func Check(t *testing.T, path string, got []byte) {
	t.Helper()
	if Update {
		if len(got) == 0 {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		want, err = nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the output (run GOLDEN_UPDATE=1 go test ./... and review the diff)\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
