package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time by release builds (-ldflags "-X main.version=v1.2.3
// -X main.buildDate=2026-12-07T00:00:00Z"); otherwise read from the build
// information Go records.
var (
	version   = ""
	buildDate = ""
)

// versionInfo is what `injector version` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified,omitempty"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// currentVersion reads the link-time values and Go's build information:
// the module version (a tagged `go install` gives it), the VCS revision
// and time (a build from a git checkout records them).
func currentVersion() versionInfo {
	v := versionInfo{Version: version, BuildDate: buildDate, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				if v.BuildDate == "" {
					// The commit's time: the build's own is not recorded.
					v.BuildDate = s.Value
				}
			}
		}
	}
	for _, f := range []*string{&v.Version, &v.Commit, &v.BuildDate} {
		if *f == "" {
			*f = "unknown"
		}
	}
	return v
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [-o json]",
		Short: "Print the injector's version, commit, build date and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout(), output, currentVersion())
		},
	}
	addOutputFlag(cmd.Flags(), &output, "text", "", "text", "json")
	return cmd
}

func printVersion(w io.Writer, output string, v versionInfo) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		commit := v.Commit
		if v.Modified {
			commit += " (modified)"
		}
		_, err := fmt.Fprintf(w, "injector %s\ncommit: %s\nbuilt: %s\ngo: %s %s\n", v.Version, commit, v.BuildDate, v.GoVersion, v.Platform)
		return err
	default:
		return fmt.Errorf("-o %q: expected text or json", output)
	}
}
