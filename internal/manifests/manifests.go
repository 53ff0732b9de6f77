// Package manifests reads the Kubernetes manifests a manifest task applies: the one parser
// of the API edge (refusing a bad manifest with the field named) and the agent.
package manifests

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

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

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// separator is a YAML document separator line as kubectl reads them: "---", maybe
	// followed by blanks, a comment and a CR.
	separator = regexp.MustCompile(`(?m)^---[ \t]*(#[^\n]*)?\r?$`)
)

// podSpecLists are the fields of a pod spec whose items name an image.
var podSpecLists = map[string]bool{"containers": true, "initContainers": true, "ephemeralContainers": true}

// RewriteImages moves the image of every container of a manifest (containers,
// initContainers and ephemeralContainers of any pod spec or pod template, in any YAML or
// JSON style) to the cluster's image repository (podnet.RewriteImage) and returns the
// manifest and the images it named, in order, each once. Nothing else is touched: an
// "image" field of a CRD's schema or inside a ConfigMap's data is not a container's. With
// nothing to rewrite the manifest is returned as it is; otherwise it is encoded again from
// its YAML nodes (comments and order kept).
func RewriteImages(content, repo string) (string, []string, error) {
	dec := yaml.NewDecoder(strings.NewReader(content))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("document %d: not YAML: %v", len(docs)+1, err)
		}
		docs = append(docs, &n)
	}
	var nodes []*yaml.Node // each container's image node, once (an alias shares its anchor's)
	seenNode := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if podSpecLists[k.Value] && v.Kind == yaml.SequenceNode {
					for _, c := range v.Content {
						if img := imageOf(c); img != nil && !seenNode[img] {
							seenNode[img] = true
							nodes = append(nodes, img)
						}
					}
				}
				walk(v)
			}
		}
	}
	for _, d := range docs {
		walk(d)
	}
	var images []string
	seen := map[string]bool{}
	changed := false
	for _, img := range nodes {
		if !seen[img.Value] {
			seen[img.Value] = true
			images = append(images, img.Value)
		}
		if to := podnet.RewriteImage(img.Value, repo); to != img.Value {
			img.Value, changed = to, true
		}
	}
	if !changed {
		return content, images, nil
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return "", nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return "", nil, err
	}
	return b.String(), images, nil
}

// imageOf is the scalar node of a container's "image" (its anchor's, for an alias), or nil.
func imageOf(container *yaml.Node) *yaml.Node {
	if container.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(container.Content); i += 2 {
		if container.Content[i].Value != "image" {
			continue
		}
		v := container.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v != nil && v.Kind == yaml.ScalarNode {
			return v
		}
	}
	return nil
}

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
		if err := sigsyaml.Unmarshal([]byte(doc), &raw); err != nil {
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
		if err := sigsyaml.Unmarshal([]byte(doc), &o); err != nil {
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
