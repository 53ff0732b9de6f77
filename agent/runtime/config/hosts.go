package config

import (
	"fmt"
	"net/url"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

// HostsToml renders <config_path>/<dir>/hosts.toml for one upstream registry host[:port]
// (e.g. "registry.k8s.io" or "127.0.0.1:5000"). dir is the host directory's name: the
// host[:port] as written, which is where containerd on Linux looks for it (every version
// reads "host:port"; 2.x also tries "host_port_" first).
//
// The file names the upstream as server, then one [host."<mirror>"] table per mirror, in
// the given order, each trusted to pull and resolve; containerd tries them in that order and
// the server last. insecure holds registry hosts (host[:port]) or mirror URLs to reach
// without TLS verification (skip_verify). An insecure upstream is reached the way Docker's
// insecure-registries are: HTTPS without verification first (a [host."https://H"] table with
// skip_verify after the mirrors), then plain HTTP (the server, http://H), so a private
// registry that speaks plain HTTP works as the image repository itself. A mirror that speaks
// plain HTTP is given as an http:// URL.
func HostsToml(upstream string, mirrors []string, insecure map[string]bool) (dir string, content string, err error) {
	if err := kubeimages.ValidateHost("upstream", upstream); err != nil {
		return "", "", err
	}
	server := "https://" + upstream
	if upstream == "docker.io" {
		server = "https://registry-1.docker.io" // Docker Hub's registry API is not on docker.io
	}
	doc := tomlDoc{
		header: []string{
			fmt.Sprintf("Registry hosts for %s, written by Deckhand's runtime task.", upstream),
			"Mirrors are tried in order, then the server.",
		},
		top: []kv{{"server", tomlString(server)}},
	}
	seen := map[string]int{}
	for i, m := range mirrors {
		field := fmt.Sprintf("mirrors[%d]", i)
		if err := kubeimages.ValidateMirror(field, m); err != nil {
			return "", "", err
		}
		if j, dup := seen[m]; dup {
			return "", "", &kubeimages.FieldError{Field: field, Value: m, Reason: fmt.Sprintf("repeats mirrors[%d]", j), Hint: "list each mirror once"}
		}
		seen[m] = i
		kvs := []kv{{"capabilities", tomlStrings("pull", "resolve")}}
		if u, _ := url.Parse(m); insecure[m] || (u != nil && insecure[u.Host]) {
			kvs = append(kvs, kv{"skip_verify", "true"})
		}
		doc.tables = append(doc.tables, table{name: "host." + tomlString(m), kvs: kvs})
	}
	if insecure[upstream] {
		doc.tables = append(doc.tables, table{name: "host." + tomlString(server), kvs: []kv{
			{"capabilities", tomlStrings("pull", "resolve")}, {"skip_verify", "true"}}})
		doc.top = []kv{{"server", tomlString("http://" + upstream)}}
	}
	return upstream, doc.String(), nil
}
