package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	t.Run("the text names the version, commit, build date and Go version", func(t *testing.T) {
		var b bytes.Buffer
		if err := printVersion(&b, "", versionInfo{Version: "v1.2.3", Commit: "abc123", Modified: true, BuildDate: "2026-12-07T00:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}); err != nil {
			t.Fatal(err)
		}
		want := "injector v1.2.3\ncommit: abc123 (modified)\nbuilt: 2026-12-07T00:00:00Z\ngo: go1.26.8 linux/amd64\n"
		if b.String() != want {
			t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
		}
	})
	t.Run("json is one object with every field", func(t *testing.T) {
		stdout, _, err := runInjector([]string{"version", "-o", "json"}, nil)
		var v versionInfo
		if err != nil || json.Unmarshal(stdout, &v) != nil || v.GoVersion != runtime.Version() || v.Version == "" || v.Commit == "" || v.BuildDate == "" {
			t.Errorf("printed %s, %v", stdout, err)
		}
	})
	t.Run("another output is refused", func(t *testing.T) {
		if _, _, err := runInjector([]string{"version", "-o", "xml"}, nil); err == nil || !strings.Contains(err.Error(), `invalid argument "xml" for "-o, --output" flag: expected text or json`) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("a binary built with link-time values prints them", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the binary")
		}
		bin := filepath.Join(t.TempDir(), "injector")
		build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=v9.9.9 -X main.buildDate=2026-12-07T01:02:03Z", ".")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "injector v9.9.9\n") || !strings.Contains(string(out), "built: 2026-12-07T01:02:03Z\n") {
			t.Errorf("printed %q, %v", out, err)
		}
	})
}

// TestErrorsArePrintedOnceAsError: cobra's own "Error:" line is silenced
// on every command, so that main's "error: ..." is the only one, whichever
// command fails and however.
func TestErrorsArePrintedOnceAsError(t *testing.T) {
	for _, args := range [][]string{{"mutate", "extra"}, {"mutate", "--bogus"}, {"issuer", "publish"}, {"trust", "check", "--bogus"}, {"nosuch"}} {
		_, stderr, err := runInjector(args, nil)
		if err == nil || len(stderr) > 0 {
			t.Errorf("%v: printed %q beside the error %v; want only the error, which main prints", args, stderr, err)
		}
	}
}
