package version

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The supported skew, checked by Skew (and stated in the README):
//   - every controller replica runs one version (a rolling upgrade is a short exception);
//   - an agent runs the controllers' minor version or the one before it, never a newer one;
//   - deckctl is within one minor version of the controllers, either way;
//   - a development build ("(devel)", or a build whose module version is a
//     pseudo-version) has no release to compare: it matches only builds of the same VCS
//     revision.
// Builds that are not known (a replica that did not answer) are left out.

// Component is one running piece and the build it reports.
type Component struct {
	// Name says which: "deckctl", a replica name, a node name.
	Name string
	// Build is the reported build string (Info.String); empty when unknown.
	Build string
}

// Skew lists, one sentence each, the combinations of the client, controller and agent
// builds that Deckhand does not support; none when all are supported.
func Skew(client Component, controllers, agents []Component) []string {
	var warnings []string
	// The controllers' builds, each with the replicas that run it.
	ctrl := groupByBuild(controllers)
	if len(ctrl) > 1 {
		var parts []string
		for _, g := range ctrl {
			parts = append(parts, fmt.Sprintf("%s on %s", g.build, names(g.names)))
		}
		warnings = append(warnings, fmt.Sprintf("controllers run different versions (%s): finish the upgrade so every replica runs one version", strings.Join(parts, "; ")))
	}
	if len(ctrl) == 0 {
		return warnings
	}
	// Agents and the client are compared with every version the controllers run.
	for _, g := range groupByBuild(agents) {
		for _, c := range ctrl {
			if w := agentSkew(Parse(g.build), Parse(c.build)); w != "" {
				warnings = append(warnings, fmt.Sprintf("%s %s %s %s", plural(len(g.names), "agent", "agents"), names(g.names), plural(len(g.names), "runs", "run"), fmt.Sprintf(w, g.build, c.build)))
			}
		}
	}
	if client.Build != "" {
		for _, c := range ctrl {
			if w := clientSkew(Parse(client.Build), Parse(c.build)); w != "" {
				warnings = append(warnings, fmt.Sprintf("%s runs %s", client.Name, fmt.Sprintf(w, client.Build, c.build)))
			}
		}
	}
	return warnings
}

// agentSkew says why an agent build a may not serve under controller build c ("" when it
// may); the sentence has %[1]s for the agent's build and %[2]s for the controllers'.
func agentSkew(a, c Info) string {
	if w := develSkew(a, c); w != "" || isDevel(a) || isDevel(c) {
		return w
	}
	am, aok := minor(a.Version)
	cm, cok := minor(c.Version)
	switch {
	case !aok || !cok:
		return "%[1]s, which cannot be compared with the controllers' %[2]s: run a released agent"
	case am.major != cm.major:
		return "%[1]s, another major version than the controllers' %[2]s: upgrade the agents to the controllers' version"
	case am.minor > cm.minor:
		return "%[1]s, newer than the controllers' %[2]s: upgrade the controllers first (agents may be one minor version older, never newer)"
	case cm.minor-am.minor > 1:
		return "%[1]s, more than one minor version older than the controllers' %[2]s: upgrade the agents (agents may be at most one minor version older)"
	}
	return ""
}

// clientSkew says why deckctl build d may not drive controllers of build c.
func clientSkew(d, c Info) string {
	if w := develSkew(d, c); w != "" || isDevel(d) || isDevel(c) {
		return w
	}
	dm, dok := minor(d.Version)
	cm, cok := minor(c.Version)
	switch {
	case !dok || !cok:
		return "%[1]s, which cannot be compared with the controllers' %[2]s: use a released deckctl"
	case dm.major != cm.major || dm.minor-cm.minor > 1 || cm.minor-dm.minor > 1:
		return "%[1]s, more than one minor version away from the controllers' %[2]s: use a deckctl of the controllers' version"
	}
	return ""
}

// develSkew compares two builds when either is a development build: by revision.
func develSkew(a, b Info) string {
	if !isDevel(a) && !isDevel(b) {
		return ""
	}
	if a.Revision != "" && a.Revision == b.Revision || a.Revision == "" && b.Revision == "" && a.Version == b.Version {
		return ""
	}
	return "%[1]s, and the controllers %[2]s: a development build matches only builds of the same revision"
}

// isDevel: a build with no release version to compare (Devel or a pseudo-version).
func isDevel(in Info) bool {
	if in.Version == Devel {
		return true
	}
	// A pseudo-version: vX.Y.Z-[pre.]yyyymmddhhmmss-abcdefabcdef[+dirty].
	v, _, _ := strings.Cut(in.Version, "+")
	parts := strings.Split(v, "-")
	if len(parts) < 3 {
		return false
	}
	rev, stamp := parts[len(parts)-1], parts[len(parts)-2]
	if i := strings.LastIndex(stamp, "."); i >= 0 {
		stamp = stamp[i+1:]
	}
	return len(rev) == 12 && len(stamp) == 14 && isDigits(stamp)
}

type majorMinor struct{ major, minor int }

// minor reads the major and minor numbers of v1.2.3 (the v is optional).
func minor(v string) (majorMinor, bool) {
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "+")
	v, _, _ = strings.Cut(v, "-")
	parts := strings.Split(v, ".")
	if len(parts) != 3 || !isDigits(parts[0]) || !isDigits(parts[1]) || !isDigits(parts[2]) {
		return majorMinor{}, false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return majorMinor{}, false
	}
	return majorMinor{ma, mi}, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

type buildGroup struct {
	build string
	names []string
}

// Same says whether two builds are one version (sameVersion).
func Same(a, b Info) bool { return sameVersion(a, b) }

// sameVersion is what makes two builds one version: the release version, or for a
// development build its revision (not the Go toolchain, not a modified work tree).
func sameVersion(a, b Info) bool {
	if isDevel(a) || isDevel(b) {
		return develSkew(a, b) == ""
	}
	return a.Version == b.Version
}

// groupByBuild groups known builds by version (in order of first appearance, names
// sorted); a group shows its first build.
func groupByBuild(cs []Component) []buildGroup {
	var out []buildGroup
	for _, c := range cs {
		if c.Build == "" {
			continue
		}
		in := Parse(c.Build)
		i := slices.IndexFunc(out, func(g buildGroup) bool { return sameVersion(Parse(g.build), in) })
		if i < 0 {
			out = append(out, buildGroup{build: c.Build})
			i = len(out) - 1
		}
		out[i].names = append(out[i].names, c.Name)
	}
	for i := range out {
		slices.Sort(out[i].names)
	}
	return out
}

// maxNames is how many names a warning lists before "and N more".
const maxNames = 5

func names(ns []string) string {
	if len(ns) <= maxNames {
		return strings.Join(ns, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ns[:maxNames], ", "), len(ns)-maxNames)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
