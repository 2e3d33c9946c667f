package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/alecthomas/kong"
)

// version is set at link time (-ldflags "-X main.version=…"). It is the one
// source of truth for the version: the keygate_build_info metric, the serve
// log line and `keygate --version` all read it through buildVersion.
var version = "dev"

// buildDetails is what `keygate version` prints: the version plus what the Go
// toolchain recorded about the build.
type buildDetails struct {
	Version   string
	Revision  string // vcs.revision, or "unknown"
	Time      string // vcs.time, or "unknown"
	Modified  bool   // vcs.modified: built from a dirty work tree
	GoVersion string
}

// readBuild reads debug.ReadBuildInfo on each call rather than caching it:
// it is cheap and only called by `version` and at serve start.
func readBuild() buildDetails {
	d := buildDetails{Version: version, Revision: "unknown", Time: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return d
	}
	// `go install …@v1.2.3` sets no ldflags but records the module version.
	if d.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		d.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			d.Revision = s.Value
		case "vcs.time":
			d.Time = s.Value
		case "vcs.modified":
			d.Modified = s.Value == "true"
		}
	}
	return d
}

// buildVersion is the version every output reports.
func buildVersion() string { return readBuild().Version }

func (d buildDetails) write(w io.Writer) error {
	dirty := ""
	if d.Modified {
		dirty = " (modified)"
	}
	_, err := fmt.Fprintf(w, "keygate %s\ncommit %s%s\nbuilt %s\n%s\n", d.Version, d.Revision, dirty, d.Time, d.GoVersion)
	return err
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error { return readBuild().write(e.stdout) }

// versionFlag is `keygate --version`: it prints what `keygate version` prints
// and exits before any command runs (kong's BeforeReset hook).
type versionFlag bool

func (versionFlag) BeforeReset(app *kong.Kong) error {
	if err := readBuild().write(app.Stdout); err != nil {
		return err
	}
	app.Exit(0)
	return nil
}
