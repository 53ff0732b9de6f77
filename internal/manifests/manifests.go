// Package manifests reads the Kubernetes manifests a manifest task applies: the one parser
// of the API edge (refusing a bad manifest with the field named) and the agent.
package manifests

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

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
// JSON style, through anchors, aliases and merge keys) to the cluster's image repository
// (podnet.RewriteImage) and returns the manifest and the images it named, in order, each
// once. Nothing else is touched: an "image" field of a CRD's schema or inside a ConfigMap's
// data is not a container's, and each image is replaced where it is written in the
// original text, so the rest keeps its bytes and meaning.
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
	// Every scalar is counted each time the manifest reaches it, through aliases too, and
	// each container's image each time a container reaches it: an image that is reached
	// from anywhere else as well (an anchor shared with a non-container field) cannot be
	// rewritten where it is written without changing that field.
	var nodes []*yaml.Node // each container's image node, once (an alias shares its anchor's)
	reached, asImage := map[*yaml.Node]int{}, map[*yaml.Node]int{}
	budget := maxVisits
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || depth > maxDepth || budget <= 0 {
			return
		}
		budget--
		switch n.Kind {
		case yaml.AliasNode:
			walk(n.Alias, depth+1)
		case yaml.ScalarNode:
			reached[n]++
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if list := deref(v); podSpecLists[k.Value] && list != nil && list.Kind == yaml.SequenceNode {
					for _, c := range list.Content {
						if img := imageOf(c, 0); img != nil {
							if asImage[img] == 0 {
								nodes = append(nodes, img)
							}
							asImage[img]++
						}
					}
				}
				walk(v, depth+1)
			}
		}
	}
	for _, d := range docs {
		walk(d, 0)
	}
	if budget <= 0 {
		return "", nil, fmt.Errorf("more than %d nodes through its aliases: expand them", maxVisits)
	}
	var images []string
	seen := map[string]bool{}
	type edit struct {
		at   int
		from string
		to   string
	}
	var edits []edit
	lines := lineStarts(content)
	for _, img := range nodes {
		if !seen[img.Value] {
			seen[img.Value] = true
			images = append(images, img.Value)
		}
		to := podnet.RewriteImage(img.Value, repo)
		if to == img.Value {
			continue
		}
		if reached[img] != asImage[img] {
			return "", nil, fmt.Errorf("line %d: the image %q is shared through an anchor with a field that is not a container's image: write it in the container", img.Line, img.Value)
		}
		at, ok := locate(content, lines, img)
		if !ok {
			return "", nil, fmt.Errorf("line %d: the image %q is not written as it reads (an escape, a line break): write it plainly", img.Line, img.Value)
		}
		edits = append(edits, edit{at, img.Value, to})
	}
	if len(edits) == 0 {
		return content, images, nil
	}
	slices.SortFunc(edits, func(a, b edit) int { return b.at - a.at })
	out := content
	for _, e := range edits {
		out = out[:e.at] + e.to + out[e.at+len(e.from):]
	}
	return out, images, nil
}

// maxDepth bounds how deep a manifest's nodes and aliases are followed, maxVisits how many
// nodes a walk through its aliases visits (a "billion laughs" manifest stops there).
const (
	maxDepth  = 64
	maxVisits = 1 << 20
)

// deref is the node an alias stands for (the node itself when it is not one).
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// imageOf is the scalar node of a container's "image", the container given as a mapping,
// an alias of one, or through merge keys ("<<: *template"; the container's own key wins),
// or nil.
func imageOf(container *yaml.Node, depth int) *yaml.Node {
	c := deref(container)
	if c == nil || c.Kind != yaml.MappingNode || depth > maxDepth {
		return nil
	}
	var merged *yaml.Node
	for i := 0; i+1 < len(c.Content); i += 2 {
		k, v := c.Content[i], c.Content[i+1]
		switch k.Value {
		case "image":
			if v = deref(v); v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				return v // (a number or a null is no image; the API server refuses it)
			}
		case "<<":
			sources := []*yaml.Node{v}
			if m := deref(v); m != nil && m.Kind == yaml.SequenceNode {
				sources = m.Content
			}
			for _, src := range sources {
				if img := imageOf(src, depth+1); img != nil && merged == nil {
					merged = img
				}
			}
		}
	}
	return merged
}

// lineStarts are the byte offsets where content's lines begin (line 1 at index 0).
func lineStarts(content string) []int {
	starts := []int{0}
	for i := 0; i < len(content); i++ {
		if content[i] == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// locate finds where scalar n's value is written in content: on its line, from its column
// on (past an anchor or a quote).
func locate(content string, lines []int, n *yaml.Node) (int, bool) {
	if n.Line < 1 || n.Line > len(lines) {
		return 0, false
	}
	start := lines[n.Line-1]
	end := len(content)
	if n.Line < len(lines) {
		end = lines[n.Line]
	}
	line := content[start:end]
	from := 0
	for col := 1; col < n.Column && from < len(line); col++ {
		_, size := utf8.DecodeRuneInString(line[from:])
		from += size
	}
	i := strings.Index(line[from:], n.Value)
	if i < 0 {
		return 0, false
	}
	return start + from + i, true
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
