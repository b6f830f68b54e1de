package tokenexchange_test

import (
	"os"
	"strings"
	"testing"
)

// TestTheWalkThroughIsThisPackage: the Go blocks of docs/providers.md are
// this package's files, as they are: what the page shows compiles and
// passes its fixtures.
func TestTheWalkThroughIsThisPackage(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/providers.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, b := range strings.Split(string(doc), "```go\n")[1:] {
		code, _, _ := strings.Cut(b, "```")
		blocks = append(blocks, code)
	}
	for _, file := range []string{"tokenexchange.go", "tokenexchange_test.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, b := range blocks {
			found = found || b == string(src)
		}
		if !found {
			t.Errorf("docs/providers.md has no Go block that is %s as it is", file)
		}
	}
}
