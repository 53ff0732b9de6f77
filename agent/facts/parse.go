package facts

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// The parsers below read text that comes from the host. They never fail: input they do not
// understand gives empty or zero results. Every string they return is valid UTF-8, because a
// proto3 string field that is not cannot be marshalled and would sink the whole Hello.

// parseMeminfo returns MemTotal and SwapTotal from /proc/meminfo in bytes. The kernel prints
// both in kB (KiB); a line in any other shape, or one that would overflow, is ignored.
func parseMeminfo(data []byte) (memBytes, swapBytes uint64) {
	for line := range strings.Lines(string(data)) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch strings.TrimSpace(key) {
		case "MemTotal":
			dst = &memBytes
		case "SwapTotal":
			dst = &swapBytes
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > math.MaxUint64/1024 {
			continue
		}
		*dst = kb * 1024
	}
	return memBytes, swapBytes
}

// parseHostname returns the first line of an /etc/hostname file that is not blank or a
// comment (hostname(5)).
func parseHostname(data []byte) string {
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line != "" && line[0] != '#' {
			return cleanString(line)
		}
	}
	return ""
}

// kubeVersionRE matches a Kubernetes release version: v1.33.4, v1.34.0-rc.1, v1.33.4+k3s1.
var kubeVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]+)?$`)

// maxVersionLen bounds what a version string may cost in a Hello.
const maxVersionLen = 64

func validKubeVersion(v string) string {
	if len(v) > maxVersionLen || !kubeVersionRE.MatchString(v) {
		return ""
	}
	return v
}

// parseKubeletVersion reads `kubelet --version`: "Kubernetes v1.33.4".
func parseKubeletVersion(out []byte) string {
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Kubernetes" {
			return validKubeVersion(f[1])
		}
	}
	return ""
}

// parseKubeadmVersion reads `kubeadm version -o short`: "v1.33.4".
func parseKubeadmVersion(out []byte) string {
	return validKubeVersion(strings.TrimSpace(string(out)))
}

// parseKubectlVersion reads `kubectl version --client -o json`:
// {"clientVersion": {"gitVersion": "v1.33.4", ...}, ...}.
func parseKubectlVersion(out []byte) string {
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"clientVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return ""
	}
	return validKubeVersion(v.ClientVersion.GitVersion)
}

// cleanString makes host text safe for a proto3 string field.
func cleanString(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// parseCapEff returns the effective capability set from a /proc/PID/status file (the CapEff
// line, 16 hex digits); ok is false when there is no such line or it does not parse.
func parseCapEff(status []byte) (caps uint64, ok bool) {
	for line := range strings.Lines(string(status)) {
		key, val, found := strings.Cut(line, ":")
		if !found || key != "CapEff" {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(val), 16, 64)
		if err != nil {
			return 0, false // ParseUint gives the largest value on overflow: not a reading
		}
		return caps, true
	}
	return 0, false
}
