package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServeWithoutTheCRDSaysSoOnce starts `injector serve` against a
// cluster where the IdentityPolicy CRD is not installed: it stays unready,
// and its log, JSON from the first line to the last (client-go's lines
// included), says once which CRD is missing, what installs it and which
// flag turns policies off, however long it waits.
func TestServeWithoutTheCRDSaysSoOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bare, err := StartBareCluster(ctx, t.TempDir(), cluster.repoRoot, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Stop()
	if err := bare.SameBinaryAs(cluster); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := webCA.WriteServing(t.TempDir(), "pod-identity-injector")
	if err != nil {
		t.Fatal(err)
	}
	// StartInjector waits for /readyz, which this one never reaches.
	err = bare.StartInjector(ctx, certFile, keyFile, webCA.PEM, "--client-ca-file="+cluster.WebhookClient.CAFile)
	if err == nil {
		t.Fatal("the injector became ready without the IdentityPolicy CRD")
	}
	// Past two more polls of the API server's discovery (every 5 s).
	time.Sleep(11 * time.Second)
	if resp, err := http.Get("http://" + bare.Injector.MetricsAddr + "/readyz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("ready without the IdentityPolicy CRD")
		}
	}
	lines, err := jsonLines(bare.ServerLogs()[0])
	if err != nil {
		t.Fatal(err)
	}
	var missing []map[string]any
	for _, l := range lines {
		if msg, _ := l["msg"].(string); strings.Contains(msg, "CustomResourceDefinition is not installed") {
			missing = append(missing, l)
		}
	}
	if len(missing) != 1 || missing[0]["level"] != "error" || missing[0]["crd"] != "identitypolicies.pod-identity.io" ||
		!strings.Contains(fmt.Sprint(missing[0]["install"]), "deploy/manifests") || missing[0]["flag"] != "--identity-policies=false" {
		t.Errorf("want one error line naming the CRD, the manifest and the flag; got %d in\n%s", len(missing), bare.InjectorLog())
	}
}

// jsonLines reads a server's log and requires every line to be a JSON
// object.
func jsonLines(file string) ([]map[string]any, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s line %d is not JSON: %q", file, n, sc.Text())
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// serverLogsAreJSON checks, after the suite, that every line every
// injector and sync of the suite wrote is JSON: client-go's lines go
// through the same logger.
func serverLogsAreJSON() error {
	for _, f := range cluster.ServerLogs() {
		if _, err := jsonLines(f); err != nil {
			return err
		}
	}
	return nil
}
