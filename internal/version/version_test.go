package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1a2b3c4d5e6f7a8b9c0d"}, {Key: "vcs.modified", Value: "false"}}},
			"v0.2.0 (1a2b3c4d5e6f) go1.26.0"},
		{"modified work tree", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1a2b3c4d5e6f7a8b9c0d"}, {Key: "vcs.modified", Value: "true"}}},
			"(devel) (1a2b3c4d5e6f, modified) go1.26.0"},
		{"no vcs", debug.BuildInfo{GoVersion: "go1.26.0"}, "(devel) (no revision) go1.26.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fromBuildInfo(&tc.bi)
			if got := in.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			if back := Parse(in.String()); back != in {
				t.Fatalf("Parse(%q) = %+v, want %+v", in.String(), back, in)
			}
		})
	}
}

func TestGetIsOneLine(t *testing.T) {
	s := Get().String()
	if s == "" || strings.Contains(s, "\n") || !strings.Contains(s, "go1.") {
		t.Fatalf("Get().String() = %q: want one line naming the Go version", s)
	}
}

func TestParseForeign(t *testing.T) {
	for _, s := range []string{"0.1.0", "agentload", ""} {
		if got := Parse(s); got != (Info{Version: s}) {
			t.Errorf("Parse(%q) = %+v, want the version only", s, got)
		}
	}
}

func TestSkew(t *testing.T) {
	const (
		v030  = "v0.3.0 (aaaaaaaaaaaa) go1.26.0"
		v031  = "v0.3.1 (bbbbbbbbbbbb) go1.26.0"
		v031g = "v0.3.1 (bbbbbbbbbbbb) go1.26.1"
		v020  = "v0.2.0 (cccccccccccc) go1.26.0"
		v010  = "v0.1.0 (dddddddddddd) go1.26.0"
		v040  = "v0.4.0 (eeeeeeeeeeee) go1.26.0"
		v100  = "v1.0.0 (ffffffffffff) go1.26.0"
		devA  = "(devel) (aaaaaaaaaaaa) go1.26.0"
		devAm = "(devel) (aaaaaaaaaaaa, modified) go1.26.0"
		devB  = "(devel) (bbbbbbbbbbbb) go1.26.0"
		devNo = "(devel) (no revision) go1.26.0"
		pseA  = "v0.0.0-20261130114550-aaaaaaaaaaaa+dirty (aaaaaaaaaaaa, modified) go1.26.0"
		pseB  = "v0.0.0-20261201000000-bbbbbbbbbbbb (bbbbbbbbbbbb) go1.26.0"
	)
	c := func(builds ...string) []Component {
		var out []Component
		for i, b := range builds {
			out = append(out, Component{Name: string(rune('a' + i)), Build: b})
		}
		return out
	}
	cli := func(b string) Component { return Component{Name: "deckctl", Build: b} }
	for _, tc := range []struct {
		name        string
		client      Component
		controllers []Component
		agents      []Component
		want        []string // a substring of each warning, in order
	}{
		{"one release everywhere", cli(v030), c(v030, v030, v030), c(v030, v030), nil},
		{"patch releases of one minor are one minor", cli(v031), c(v031, v031), c(v030), nil},
		{"another toolchain is the same version", cli(v031), c(v031, v031g), c(v031g), nil},
		{"agents one minor older", cli(v030), c(v030), c(v020, v030), nil},
		{"agents two minors older", cli(v030), c(v030), c(v010, v020), []string{"agent a runs v0.1.0 (dddddddddddd) go1.26.0, more than one minor version older than the controllers' v0.3.0"}},
		{"agent newer than controllers", cli(v030), c(v030), c(v040), []string{"agent a runs v0.4.0 (eeeeeeeeeeee) go1.26.0, newer than the controllers'"}},
		{"agent of another major", cli(v100), c(v100), c(v040), []string{"another major version"}},
		{"controllers disagree", cli(v030), c(v030, v020, v030), nil, []string{"controllers run different versions (v0.3.0 (aaaaaaaaaaaa) go1.26.0 on a, c; v0.2.0 (cccccccccccc) go1.26.0 on b)"}},
		{"during an upgrade agents are checked against each controller version", cli(v030), c(v030, v020), c(v010),
			[]string{"controllers run different versions", "more than one minor version older than the controllers' v0.3.0"}},
		{"client one minor away either way", cli(v040), c(v030), nil, nil},
		{"client older by one", cli(v020), c(v030), nil, nil},
		{"client two minors away", cli(v010), c(v030), nil, []string{"deckctl runs v0.1.0 (dddddddddddd) go1.26.0, more than one minor version away"}},
		{"unknown builds are left out", cli(""), c(v030, ""), c("", v030), nil},
		{"nothing known", cli(v030), c(""), c(v010), nil},
		{"devel builds of one revision", cli(devA), c(devA, devAm), c(devA), nil},
		{"devel builds of two revisions", cli(devA), c(devA), c(devB), []string{"agent a runs (devel) (bbbbbbbbbbbb) go1.26.0, and the controllers (devel) (aaaaaaaaaaaa) go1.26.0: a development build matches only builds of the same revision"}},
		{"devel controllers of two revisions", cli(devA), c(devA, devB), nil, []string{"controllers run different versions", "deckctl runs (devel) (aaaaaaaaaaaa) go1.26.0, and the controllers (devel) (bbbbbbbbbbbb)"}},
		{"devel client of another revision", cli(devB), c(devA), nil, []string{"deckctl runs (devel) (bbbbbbbbbbbb)"}},
		{"devel without revisions (go test) are one build", cli(devNo), c(devNo, devNo), c(devNo), nil},
		{"devel without revision against a release", cli(v030), c(v030), c(devNo), []string{"development build"}},
		{"a release built from the same revision as a devel build", cli(v030), c(devA), c(v030), nil},
		{"pseudo-versions compare by revision", cli(pseA), c(pseA), c(pseB), []string{"development build"}},
		{"pseudo-version of the same revision", cli(devA), c(pseA), c(devA), nil},
		{"a version that is no version", cli(v030), c(v030), c("agentload"), []string{"agentload, which cannot be compared"}},
		{"many agents are named once", cli(v030), c(v030), c(v010, v010, v010, v010, v010, v010, v010), []string{"agents a, b, c, d, e and 2 more run v0.1.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Skew(tc.client, tc.controllers, tc.agents)
			if len(got) != len(tc.want) {
				t.Fatalf("Skew() = %q, want %d warning(s) %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
