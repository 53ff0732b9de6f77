// Package manifests reads the Kubernetes manifests a manifest task applies: the one parser
// of the API edge (refusing a bad manifest with the field named) and the agent.
package manifests

import (
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/internal/podnet"
)

// Limits of a manifest task: inline content is stored in the task record, one store
// write; a manifest read from a location (Calico's is ~300 KiB, the Tigera operator's CRDs
// ~2 MiB) is bounded on the node.
const (
	MaxBytes        = 512 << 10
	MaxFetchedBytes = 8 << 20
	MaxObjects      = 5000
)

func maxFor(fetched bool) int {
	if fetched {
		return MaxFetchedBytes
	}
	return MaxBytes
}

// imageLine is a container's image in a manifest: "image: REF", "- image: REF", quoted or
// not, maybe with a comment after it.
var imageLine = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?image:\s*)(["']?)([^\s"'#]+)(["']?)`)

// RewriteImages moves every image reference of a manifest to the cluster's image
// repository (podnet.RewriteImage) and returns the manifest and the references it had, in
// order, each once.
func RewriteImages(content, repo string) (string, []string) {
	var images []string
	seen := map[string]bool{}
	out := imageLine.ReplaceAllStringFunc(content, func(line string) string {
		m := imageLine.FindStringSubmatch(line)
		if !seen[m[3]] {
			seen[m[3]] = true
			images = append(images, m[3])
		}
		return m[1] + m[2] + podnet.RewriteImage(m[3], repo) + m[4]
	})
	return out, images
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// separator is a YAML document separator line as kubectl reads them: "---", maybe
	// followed by blanks, a comment and a CR.
	separator = regexp.MustCompile(`(?m)^---[ \t]*(#[^\n]*)?\r?$`)
)

// ValidName reports whether s names a manifest: lower-case letters, digits and '-',
// starting with a letter, at most 63 characters (it is a file name on the node).
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Object is one object of a manifest as kubectl names it.
type Object struct {
	Kind      string
	Namespace string
	Name      string
}

// Parse reads a manifest's YAML documents (empty and comment-only ones skipped) and returns
// its objects in order. Each must have apiVersion, kind and metadata.name; a List is
// refused (give its items as documents), and so is a Secret unless secrets: a manifest
// given inline is stored in the task record, which viewers read (one read from a location
// is not).
func Parse(content string, secrets bool) ([]Object, error) {
	if max := maxFor(secrets); len(content) > max {
		return nil, fmt.Errorf("has %d bytes; at most %d are allowed", len(content), max)
	}
	var objs []Object
	for i, doc := range separator.Split(content, -1) {
		var raw map[string]any
		if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
			return nil, fmt.Errorf("document %d: not YAML: %v", i+1, err)
		}
		if len(raw) == 0 {
			continue
		}
		var o struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("document %d: %v", i+1, err)
		}
		switch {
		case o.APIVersion == "" || o.Kind == "":
			return nil, fmt.Errorf("document %d: no apiVersion or kind: every document must be one Kubernetes object", i+1)
		case strings.HasSuffix(o.Kind, "List"):
			return nil, fmt.Errorf("document %d: a %s: give its items as documents of their own", i+1, o.Kind)
		case o.Kind == "Secret" && !secrets:
			return nil, fmt.Errorf("document %d: a Secret: a manifest is stored where viewers read it; create the Secret with kubectl instead", i+1)
		case o.Metadata.Name == "":
			return nil, fmt.Errorf("document %d (%s): no metadata.name", i+1, o.Kind)
		}
		objs = append(objs, Object{Kind: o.Kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name})
		if len(objs) > MaxObjects {
			return nil, fmt.Errorf("more than %d objects", MaxObjects)
		}
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no objects: give YAML documents separated by --- lines")
	}
	return objs, nil
}
