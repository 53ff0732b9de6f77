package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Crictl renders /etc/crictl.yaml pointing crictl's runtime and image endpoints at the
// containerd socket (a path, or a unix:// URL; empty means DefaultGRPCAddress). A
// timeoutSeconds of 0 or less leaves out the timeout line, so crictl uses its own default.
func Crictl(socket string, timeoutSeconds int) string {
	if socket == "" {
		socket = DefaultGRPCAddress
	}
	endpoint := socket
	if !strings.Contains(socket, "://") {
		endpoint = "unix://" + socket
	}
	var b strings.Builder
	b.WriteString("# crictl configuration, written by Deckhand's runtime task.\n")
	fmt.Fprintf(&b, "runtime-endpoint: %s\n", yamlString(endpoint))
	fmt.Fprintf(&b, "image-endpoint: %s\n", yamlString(endpoint))
	if timeoutSeconds > 0 {
		fmt.Fprintf(&b, "timeout: %d\n", timeoutSeconds)
	}
	b.WriteString("debug: false\n")
	b.WriteString("pull-image-on-create: false\n")
	return b.String()
}

// yamlString writes s plain when that is unambiguous, double-quoted otherwise.
func yamlString(s string) string {
	plain := strings.Contains(s, "/") // a path or URL, never read as a number, bool or null
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._:-", r)) {
			plain = false
			break
		}
	}
	if plain && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, ":") && !strings.Contains(s, ": ") {
		return s
	}
	return strconv.Quote(s)
}
