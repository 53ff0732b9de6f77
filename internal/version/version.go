package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Devel is the module version of a build not made from a tagged module (go build in a work
// tree without VCS information, go test).
const Devel = "(devel)"

// revisionLen is how much of the VCS revision a build string keeps.
const revisionLen = 12

// Info is one build.
type Info struct {
	// Version is the module version (v1.2.3, a pseudo-version, or Devel).
	Version string
	// Revision is the short VCS revision, empty when the build has none.
	Revision string
	// Modified: the work tree had changes the revision does not hold.
	Modified bool
	// GoVersion is the toolchain that built it (go1.26.0).
	GoVersion string
}

// Get is the running binary's build.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: Devel}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = Devel
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
			if len(in.Revision) > revisionLen {
				in.Revision = in.Revision[:revisionLen]
			}
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the build as every binary prints it with --version and as the agent reports
// it: "v0.2.0 (1a2b3c4d5e6f) go1.26.0", "(devel) (1a2b3c4d5e6f, modified) go1.26.0",
// "(devel) (no revision) go1.26.0". Parse reads it back.
func (in Info) String() string {
	rev := in.Revision
	if rev == "" {
		rev = "no revision"
	}
	if in.Modified {
		rev += ", modified"
	}
	s := fmt.Sprintf("%s (%s)", in.Version, rev)
	if in.GoVersion != "" {
		s += " " + in.GoVersion
	}
	return s
}

// Parse reads a String back. A string in another form (an older agent's bare "0.1.0", a
// load generator's name) is taken as a version with nothing else known.
func Parse(s string) Info {
	s = strings.TrimSpace(s)
	open, end := strings.Index(s, " ("), strings.LastIndex(s, ")")
	if open < 0 || end < open {
		return Info{Version: s}
	}
	in := Info{Version: s[:open], GoVersion: strings.TrimSpace(s[end+1:])}
	for i, part := range strings.Split(s[open+2:end], ", ") {
		switch {
		case part == "modified":
			in.Modified = true
		case i == 0 && part != "no revision":
			in.Revision = part
		}
	}
	return in
}
