package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// file is what an image holds at one path.
type file struct {
	hdr  *tar.Header
	data []byte // regular files under /etc only
}

// contents reads every layer of img into a path -> file map (paths without a leading "/").
func contents(img v1.Image) (map[string]file, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	files := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			f := file{hdr: h}
			p := strings.TrimSuffix(path.Clean(h.Name), "/")
			if strings.HasPrefix(p, "etc/") {
				if f.data, err = io.ReadAll(tr); err != nil {
					rc.Close()
					return nil, err
				}
			}
			files[p] = f
		}
		rc.Close()
	}
	return files, nil
}

// load finds ref in the OCI layout or the registry.
func load(o options, ref string) (v1.Image, error) {
	if o.oci != "" {
		lp, err := layout.FromPath(o.oci)
		if err != nil {
			return nil, err
		}
		idx, err := lp.ImageIndex()
		if err != nil {
			return nil, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, d := range m.Manifests {
			if d.Annotations[refNameAnno] == ref {
				return idx.Image(d.Digest)
			}
		}
		return nil, fmt.Errorf("not in the OCI layout %s", o.oci)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Image(r)
}

// verify reports what kubeadm, the kubelet and containerd would trip over in img for bin.
func verify(img v1.Image, bin string) []string {
	var bad []string
	cf, err := img.ConfigFile()
	if err != nil {
		return []string{"config: " + err.Error()}
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		bad = append(bad, fmt.Sprintf("platform is %s/%s, want linux/amd64", cf.OS, cf.Architecture))
	}
	sh := shapeOf(bin)
	if want := []string{sh.entry}; !slices.Equal(cf.Config.Entrypoint, want) {
		bad = append(bad, fmt.Sprintf("entrypoint is %q, want %q", cf.Config.Entrypoint, want))
	}
	if !slices.Contains(cf.Config.Env, pathEnv) {
		bad = append(bad, fmt.Sprintf("env %q lacks %s", cf.Config.Env, pathEnv))
	}
	files, err := contents(img)
	if err != nil {
		return append(bad, "layers: "+err.Error())
	}
	need := func(p string, ok func(f file) bool, what string) {
		f, found := files[p]
		if !found {
			bad = append(bad, "/"+p+" is missing")
		} else if !ok(f) {
			bad = append(bad, "/"+p+" "+what)
		}
	}
	exe := func(f file) bool { return f.hdr.Typeflag == tar.TypeReg && f.hdr.Mode&0o111 != 0 }
	need(strings.TrimPrefix(sh.path, "/"), exe, "is not an executable file")
	for at := range sh.extra {
		need(strings.TrimPrefix(at, "/"), exe, "is not an executable file (scripts/k8s.sh builds it into the kit)")
	}
	for _, b := range alongside[bin] {
		need(strings.TrimPrefix(path.Join(binDir, b), "/"), exe, "is not an executable file (scripts/k8s.sh builds it into the kit)")
	}
	need("tmp", func(f file) bool { return f.hdr.Typeflag == tar.TypeDir && f.hdr.Mode&0o7777 == 0o1777 }, "is not a directory with mode 1777")
	for p, users := range map[string][]string{"etc/passwd": {"root:x:0:", "nobody:x:65534:"}, "etc/group": {"root:x:0:", "nogroup:x:65534:"}} {
		need(p, func(f file) bool {
			for _, u := range users {
				if !strings.Contains("\n"+string(f.data), "\n"+u) {
					return false
				}
			}
			return true
		}, fmt.Sprintf("does not list %q", users))
	}
	if sh.iptables {
		if !slices.Contains(cf.Config.Env, "LD_LIBRARY_PATH="+libDir) {
			bad = append(bad, bin+"'s env lacks LD_LIBRARY_PATH="+libDir)
		}
		need(strings.TrimPrefix(xtablesBin, "/"), exe, "is not an executable file")
		for _, n := range iptablesNames {
			need("usr/sbin/"+n, func(f file) bool { return f.hdr.Linkname == path.Base(xtablesBin) }, "does not link to xtables-nft-multi")
		}
		found := false
		for p := range files {
			if strings.HasPrefix(p, strings.TrimPrefix(xtablesDir, "/")+"/") && strings.HasSuffix(p, ".so") {
				found = true
			}
		}
		if !found {
			bad = append(bad, xtablesDir+" has no extensions")
		}
	}
	return bad
}

// checkAll verifies every image kubeadm lists; for kube-proxy it also checks the
// libraries ldd lists for the sysroot's xtables-nft-multi are in the image.
func checkAll(o options) error {
	names, err := o.names()
	if err != nil {
		return err
	}
	var bad []string
	for _, ref := range names {
		img, err := load(o, ref)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", ref, err))
			continue
		}
		probs := verify(img, component(ref))
		if shapeOf(component(ref)).iptables {
			libs, err := lddLibs(o.ldd, path.Join(o.sysroot, xtablesBin))
			if err != nil {
				probs = append(probs, err.Error())
			}
			files, _ := contents(img)
			for _, l := range libs {
				if _, ok := files[strings.TrimPrefix(l, "/")]; !ok {
					probs = append(probs, l+" (ldd lists it for iptables) is missing")
				}
			}
		}
		for _, p := range probs {
			bad = append(bad, ref+": "+p)
		}
		if len(probs) == 0 {
			fmt.Fprintf(o.stdout(), "%s ok\n", ref)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d problems:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	return nil
}
