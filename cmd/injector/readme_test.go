package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMECommandsPrintWhatTheREADMEShows runs every `$ injector ...`
// command of the console blocks of the README and of docs/*.md, from the
// repository root, and
// requires the lines the README shows after it to appear together, in
// that order, in what the command prints (stdout, stderr, then an
// "error: ..." line when it fails, as the binary prints it); it must fail
// exactly when the README shows an error line.
func TestREADMECommandsPrintWhatTheREADMEShows(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	var text strings.Builder
	for _, name := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	t.Chdir(root)
	ran := 0
	for _, block := range strings.Split(text.String(), "```console\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		lines := strings.Split(strings.TrimRight(block, "\n"), "\n")
		cmd, ok := strings.CutPrefix(lines[0], "$ injector ")
		if !ok {
			continue
		}
		ran++
		want := lines[1:]
		t.Run(cmd, func(t *testing.T) {
			stdout, stderr, err := runInjector(strings.Fields(cmd), nil)
			out := string(stdout) + string(stderr)
			if err != nil {
				out += "error: " + err.Error() + "\n"
			}
			wantErr := false
			for _, l := range want {
				wantErr = wantErr || strings.HasPrefix(l, "error: ")
			}
			if (err != nil) != wantErr {
				t.Errorf("the command returned %v; the README shows it %s", err, map[bool]string{true: "failing", false: "succeeding"}[wantErr])
			}
			if !strings.Contains("\n"+out, "\n"+strings.Join(want, "\n")+"\n") {
				t.Errorf("the output does not hold the README's lines\n%s\nit printed:\n%s", strings.Join(want, "\n"), out)
			}
		})
	}
	if ran < 3 {
		t.Errorf("%d injector commands in the README's console blocks, want the three policy examples at least", ran)
	}
}
