// Command k8skit is lab tooling (never imported by a product binary; scripts/lint-deps.sh
// checks it): it packs the binaries scripts/k8s.sh built into one image per control-plane
// component, under exactly the names `kubeadm config images list --image-repository R
// --kubernetes-version V` prints, and pushes them to a registry or writes them into an OCI
// layout directory. With -check it verifies images already there instead.
//
//	go run ./scripts/k8skit -kit "$(scripts/k8s.sh | tail -1)" -registry 127.0.0.1:5000
//	go run ./scripts/k8skit -kit DIR -oci /tmp/images -repository registry.k8s.io
//	go run ./scripts/k8skit -check -oci /tmp/images
//
// Each image is one layer on an empty base: /usr/local/bin/<binary>, /etc/passwd and
// /etc/group (root, nobody), /tmp with mode 1777; the config names the entrypoint, PATH
// and platform linux/amd64. etcd's image also carries /usr/local/bin/etcdctl, as
// registry.k8s.io/etcd's does (admins and Deckhand's reset check members with it through
// `kubectl exec`). kube-proxy's image also carries iptables (Debian's
// xtables-nft-multi under the iptables/ip6tables(-save/-restore) names, the libraries ldd
// lists for it and its extensions, /usr/lib/x86_64-linux-gnu/xtables/*.so) with
// LD_LIBRARY_PATH set, because its iptables mode runs iptables-save and iptables-restore.
// The pod network providers' images are packed too, where a cluster with the repository pulls
// them (podnet.RewriteImage): flannel's has flanneld in /opt/bin, as upstream's image does,
// and iptables like kube-proxy's.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	binDir      = "/usr/local/bin"
	pathEnv     = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	libDir      = "/lib/x86_64-linux-gnu"
	xtablesDir  = "/usr/lib/x86_64-linux-gnu/xtables"
	xtablesBin  = "/usr/sbin/xtables-nft-multi"
	refNameAnno = "org.opencontainers.image.ref.name"
	passwd      = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group       = "root:x:0:\nnogroup:x:65534:\n"
)

// iptablesNames are the commands kube-proxy's iptables mode runs; each is a link to
// xtables-nft-multi, which dispatches on its name.
var iptablesNames = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

// alongside are the kit's other binaries an image carries in /usr/local/bin beside its own, as
// the registry.k8s.io image of that name does.
var alongside = map[string][]string{"etcd": {"etcdctl", "etcdutl"}}

// shape is how an image carries the kit's binary: by default the binary named as the image's
// component, in /usr/local/bin and its entrypoint, without iptables.
type shape struct {
	bin      string            // the kit's binary
	path     string            // where the image has it; default /usr/local/bin/BIN
	entry    string            // the entrypoint; default path
	iptables bool              // the binary runs iptables: the image carries it
	extra    map[string]string // more of the kit's binaries: path in the image -> kit binary
}

// LabProviders are the pod network providers whose images the kit builds.
var LabProviders = []string{"bridge", "flannel"}

// LabCNIPluginImage is the lab's image of the flannel CNI plugin that flannel's own manifest
// installs with `cp -f /flannel /opt/cni/bin/flannel` (upstream's flannel-cni-plugin image is
// built from flannel-io/cni-plugin, which the Go module proxy does not serve; this one carries
// containernetworking/plugins v0.9.1's, under a name that says so).
const LabCNIPluginImage = "ghcr.io/deckhand-lab/flannel-cni-plugin:cni-plugins-v0.9.1"

// shapes are the images that differ from the default: kube-proxy's iptables mode; flannel's
// image, which upstream has flanneld in /opt/bin (its manifests run /opt/bin/flanneld),
// iptables for its FORWARD and masquerade rules and flannel's /opt/bin/install-conf for its
// manifest's install-cni init container; and the lab's flannel CNI plugin image, whose init
// container runs cp.
var shapes = map[string]shape{
	"kube-proxy":         {bin: "kube-proxy", iptables: true},
	"flannel":            {bin: "flanneld", path: "/opt/bin/flanneld", iptables: true, extra: map[string]string{"/opt/bin/install-conf": "install-conf"}},
	"flannel-cni-plugin": {bin: "flannel-cni", path: "/flannel", entry: "/bin/cp", extra: map[string]string{"/bin/cp": "cp"}},
}

func shapeOf(component string) shape {
	s, ok := shapes[component]
	if !ok {
		s = shape{bin: component}
	}
	if s.path == "" {
		s.path = path.Join(binDir, s.bin)
	}
	if s.entry == "" {
		s.entry = s.path
	}
	return s
}

// options say what to pack and where.
type options struct {
	kit        string    // directory of binaries from scripts/k8s.sh
	version    string    // Kubernetes version whose image names kubeadm lists
	repository string    // kubeadm's --image-repository
	add        addList   // extra single-binary images (NAME:TAG=BINARY)
	registry   string    // push to this registry host[:port] (plain HTTP allowed) ...
	oci        string    // ... or write into this OCI layout directory
	sysroot    string    // where xtables-nft-multi and its libraries are read from
	ldd        string    // the ldd command that lists a binary's libraries
	out        io.Writer // where the packed and checked names are printed; nil means stdout
}

func (o options) stdout() io.Writer {
	if o.out == nil {
		return os.Stdout
	}
	return o.out
}

func main() {
	var o options
	check := flag.Bool("check", false, "verify the images instead of packing them")
	flag.StringVar(&o.kit, "kit", "", "kit directory printed by scripts/k8s.sh (required unless -check)")
	flag.StringVar(&o.version, "kubernetes-version", "v1.33.13", "Kubernetes version whose image names kubeadm lists")
	flag.StringVar(&o.repository, "repository", "", "kubeadm --image-repository; default: -registry, or registry.k8s.io with -oci")
	flag.StringVar(&o.registry, "registry", "", "registry host[:port] to push to (plain HTTP is allowed)")
	flag.StringVar(&o.oci, "oci", "", "OCI layout directory to write instead of pushing")
	flag.StringVar(&o.sysroot, "sysroot", "/", "root to read Debian's iptables (xtables-nft-multi) and its libraries from")
	flag.StringVar(&o.ldd, "ldd", "ldd", "ldd command used to list the libraries iptables needs")
	flag.Var(&o.add, "add", "also pack BINARY as the single-binary image REPOSITORY/NAME:TAG (repeatable; NAME:TAG=BINARY)")
	flag.Parse()
	var err error
	if *check {
		err = checkAll(o)
	} else {
		err = packAll(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8skit:", err)
		os.Exit(1)
	}
}

func (o *options) names() ([]string, error) {
	if (o.registry == "") == (o.oci == "") {
		return nil, errors.New("give exactly one of -registry HOST[:PORT] or -oci DIR")
	}
	if o.repository == "" {
		o.repository = o.registry
	}
	names, err := kubeimages.ControlPlaneImages(o.version, o.repository)
	if err != nil {
		return nil, fmt.Errorf("-kubernetes-version/-repository: %w", err)
	}
	// The images of the pod network providers the lab runs, where a cluster with this
	// repository pulls them (Calico's and Cilium's are not built from the module proxy).
	for _, prov := range LabProviders {
		names = append(names, podnet.MustLookup(prov).ImagesAt("", o.repository)...)
	}
	names = append(names, podnet.RewriteImage(LabCNIPluginImage, o.repository))
	return names, nil
}

// component is the binary an image name carries: the last path element before the tag
// (registry.k8s.io/coredns/coredns:v1.12.0 -> coredns).
func component(ref string) string {
	n := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.IndexByte(n, ':'); i >= 0 {
		n = n[:i]
	}
	return n
}

func packAll(o options) error {
	names, err := o.names()
	if err != nil {
		return err
	}
	if o.kit == "" {
		return errors.New("-kit is required: the directory scripts/k8s.sh prints as its last line")
	}
	var lp layout.Path
	if o.oci != "" {
		if lp, err = layout.FromPath(o.oci); err != nil {
			if lp, err = layout.Write(o.oci, empty.Index); err != nil {
				return fmt.Errorf("-oci %s: %w", o.oci, err)
			}
		}
	}
	// The kit's images under kubeadm's names, then the extra single-binary ones (-add).
	type job struct {
		ref, src string
		also     []string // more binaries for /usr/local/bin
	}
	var jobs []job
	for _, ref := range names {
		j := job{ref: ref, src: filepath.Join(o.kit, shapeOf(component(ref)).bin)}
		for _, b := range alongside[component(ref)] {
			j.also = append(j.also, filepath.Join(o.kit, b))
		}
		jobs = append(jobs, j)
	}
	for _, a := range o.add {
		nt, src, _ := strings.Cut(a, "=")
		jobs = append(jobs, job{ref: o.repository + "/" + nt, src: src})
	}
	for _, j := range jobs {
		img, err := buildFrom(o, component(j.ref), j.src, j.also...)
		if err != nil {
			return fmt.Errorf("%s: %w", j.ref, err)
		}
		if o.oci != "" {
			err = lp.ReplaceImage(img, match.Annotation(refNameAnno, j.ref), layout.WithAnnotations(map[string]string{refNameAnno: j.ref}))
		} else {
			var r name.Reference
			if r, err = name.ParseReference(j.ref, name.Insecure); err == nil {
				err = remote.Write(r, img)
			}
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", j.ref, err)
		}
		d, _ := img.Digest()
		fmt.Fprintf(o.stdout(), "%s@%s\n", j.ref, d)
	}
	return nil
}

// addList is a repeatable -add NAME:TAG=BINARY flag.
type addList []string

func (a *addList) String() string { return strings.Join(*a, ",") }
func (a *addList) Set(v string) error {
	nt, src, ok := strings.Cut(v, "=")
	if !ok || nt == "" || src == "" || !strings.Contains(nt, ":") {
		return fmt.Errorf("%q: give NAME:TAG=BINARY, for example probe:v1=/tmp/probe", v)
	}
	*a = append(*a, v)
	return nil
}

// entry is one file of an image layer.
type entry struct {
	hdr  tar.Header
	from string // host file to copy, for regular files without data
	data []byte
}

func dir(p string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode}}
}

// buildFrom packs the binary at src for the image of component bin (see shapeOf: its
// directory, /usr/local/bin by default, is the entrypoint's), and the binaries at also
// under their own names in /usr/local/bin.
func buildFrom(o options, bin, src string, also ...string) (v1.Image, error) {
	sh := shapeOf(bin)
	need := append([]string{src}, also...)
	for _, b := range sh.extra {
		need = append(need, filepath.Join(filepath.Dir(src), b))
	}
	for _, s := range need {
		if st, err := os.Stat(s); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("the kit has no binary %s (run scripts/k8s.sh first): %v", s, err)
		}
	}
	entries := []entry{
		dir("etc", 0o755), dir("tmp", 0o1777), dir("usr", 0o755), dir("usr/local", 0o755), dir("usr/local/bin", 0o755),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, data: []byte(passwd)},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, data: []byte(group)},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(sh.path, "/"), Mode: 0o755}, from: src},
	}
	for at, b := range sh.extra {
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(at, "/"), Mode: 0o755}, from: filepath.Join(filepath.Dir(src), b)})
	}
	// The directories above the binaries outside /usr/local/bin, once each.
	dirs := map[string]bool{"etc": true, "tmp": true, "usr": true, "usr/local": true, "usr/local/bin": true}
	for _, e := range slices.Clone(entries) {
		for d := path.Dir(e.hdr.Name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			entries = append(entries, dir(d, 0o755))
		}
	}
	for _, s := range also {
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path.Join(binDir, filepath.Base(s)), "/"), Mode: 0o755}, from: s})
	}
	env := []string{pathEnv}
	if sh.iptables {
		ipt, err := iptables(o)
		if err != nil {
			return nil, fmt.Errorf("%s needs iptables in its image: %w", bin, err)
		}
		entries = append(entries, ipt...)
		env = append(env, "LD_LIBRARY_PATH="+libDir)
	}
	layer, err := layerOf(entries)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{sh.entry}
	cf.Config.Env = env
	return mutate.ConfigFile(img, cf)
}

// layerOf writes the entries (parents first, sorted) into one uncompressed tar in memory.
func layerOf(entries []entry) (v1.Layer, error) {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Format = tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			if e.from != "" {
				b, err := os.ReadFile(e.from)
				if err != nil {
					return nil, err
				}
				e.data = b
			}
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// iptables lists the files kube-proxy's iptables mode needs, read from o.sysroot.
func iptables(o options) ([]entry, error) {
	host := func(p string) string { return filepath.Join(o.sysroot, p) }
	if _, err := os.Stat(host(xtablesBin)); err != nil {
		return nil, fmt.Errorf("%v: install Debian's iptables package (apt-get install -y iptables) or point -sysroot at a root that has it", err)
	}
	exts, _ := filepath.Glob(host(path.Join(xtablesDir, "*.so")))
	if len(exts) == 0 {
		return nil, fmt.Errorf("no extensions in %s: install Debian's iptables package", host(xtablesDir))
	}
	out := []entry{dir("usr/sbin", 0o755), dir("usr/lib", 0o755), dir("usr/lib/x86_64-linux-gnu", 0o755), dir(strings.TrimPrefix(xtablesDir, "/"), 0o755)}
	out = append(out, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(xtablesBin, "/"), Mode: 0o755}, from: host(xtablesBin)})
	for _, n := range iptablesNames {
		out = append(out, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/sbin/" + n, Linkname: path.Base(xtablesBin)}})
	}
	libs := map[string]bool{}
	for _, f := range append([]string{host(xtablesBin)}, exts...) {
		ls, err := lddLibs(o.ldd, f)
		if err != nil {
			return nil, err
		}
		for _, l := range ls {
			libs[l] = true
		}
		if f != host(xtablesBin) {
			out = append(out, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path.Join(xtablesDir, filepath.Base(f)), "/"), Mode: 0o644}, from: f})
		}
	}
	dirs := map[string]bool{}
	for l := range libs {
		for d := path.Dir(l); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append(out, dir(strings.TrimPrefix(d, "/"), 0o755))
		}
		out = append(out, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(l, "/"), Mode: 0o755}, from: host(l)})
	}
	return dedupe(out), nil
}

// dedupe keeps the first entry of each name (directories are listed by several callers).
func dedupe(es []entry) []entry {
	seen := map[string]bool{}
	var out []entry
	for _, e := range es {
		if !seen[e.hdr.Name] {
			seen[e.hdr.Name] = true
			out = append(out, e)
		}
	}
	return out
}

// lddLibs returns the absolute library paths ldd prints for file: "name => /path (addr)"
// and the loader's "/path (addr)".
func lddLibs(ldd, file string) ([]string, error) {
	out, err := exec.Command(ldd, file).Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", ldd, file, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}
