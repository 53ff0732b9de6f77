package main

import (
	"archive/tar"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
)

// fakeKit writes tiny stand-ins for the kit's binaries and a sysroot with a fake
// xtables-nft-multi, its libraries and an ldd that lists them, so the test needs neither
// the real kit nor iptables on the machine.
func fakeKit(t *testing.T) (kit, sysroot, ldd string) {
	t.Helper()
	d := t.TempDir()
	kit, sysroot = filepath.Join(d, "kit"), filepath.Join(d, "root")
	write := func(p, data string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "pause", "etcd", "etcdctl", "etcdutl", "flanneld", "flannel-cni", "cp", "install-conf"} {
		write(filepath.Join(kit, b), "#!/bin/sh\necho "+b+"\n", 0o755)
	}
	write(filepath.Join(sysroot, "usr/sbin/xtables-nft-multi"), "ELF xtables", 0o755)
	write(filepath.Join(sysroot, "usr/lib/x86_64-linux-gnu/xtables/libxt_comment.so"), "ELF ext", 0o644)
	write(filepath.Join(sysroot, "usr/lib/x86_64-linux-gnu/xtables/libxt_mark.so"), "ELF ext", 0o644)
	for _, l := range []string{"lib/x86_64-linux-gnu/libxtables.so.12", "lib/x86_64-linux-gnu/libnftnl.so.11", "lib/x86_64-linux-gnu/libc.so.6", "lib64/ld-linux-x86-64.so.2"} {
		write(filepath.Join(sysroot, l), "ELF lib", 0o755)
	}
	ldd = filepath.Join(d, "ldd")
	write(ldd, `#!/bin/sh
echo "	linux-vdso.so.1 (0x00007ffd)"
case "$1" in
*xtables-nft-multi) echo "	libxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f01)"
  echo "	libnftnl.so.11 => /lib/x86_64-linux-gnu/libnftnl.so.11 (0x00007f02)" ;;
esac
echo "	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f03)"
echo "	/lib64/ld-linux-x86-64.so.2 (0x00007f04)"
`, 0o755)
	return kit, sysroot, ldd
}

// What `kubeadm config images list --kubernetes-version v1.33.13 --image-repository R`
// prints (kubeadm v1.33.13, run by hand).
func kubeadmLists(r string) []string {
	coredns := r + "/coredns:v1.12.0"
	if r == "registry.k8s.io" {
		coredns = r + "/coredns/coredns:v1.12.0"
	}
	flannel := r + "/flannel-io/flannel:" + podnet.FlannelVersion
	if r == "registry.k8s.io" {
		flannel = "ghcr.io/flannel-io/flannel:" + podnet.FlannelVersion
	}
	return []string{r + "/kube-apiserver:v1.33.13", r + "/kube-controller-manager:v1.33.13", r + "/kube-scheduler:v1.33.13",
		r + "/kube-proxy:v1.33.13", coredns, r + "/pause:3.10", r + "/etcd:3.5.24-0", flannel, podnet.RewriteImage(LabCNIPluginImage, r)}
}

func TestImagesCarryWhatKubeadmAndContainerdNeed(t *testing.T) {
	kit, sysroot, ldd := fakeKit(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct {
		name string
		o    options
		repo string
	}{
		{"oci layout, default repository", options{oci: filepath.Join(t.TempDir(), "oci")}, "registry.k8s.io"},
		{"registry", options{registry: host}, host},
		{"oci layout, custom repository", options{oci: filepath.Join(t.TempDir(), "oci"), repository: "mirror.lab:5000/k8s"}, "mirror.lab:5000/k8s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.kit, o.sysroot, o.ldd, o.version, o.out = kit, sysroot, ldd, "v1.33.13", io.Discard
			if err := packAll(o); err != nil {
				t.Fatalf("packAll: %v", err)
			}
			if o.oci != "" { // packing twice replaces, never duplicates
				if err := packAll(o); err != nil {
					t.Fatalf("second packAll: %v", err)
				}
				lp, _ := layout.FromPath(o.oci)
				idx, _ := lp.ImageIndex()
				m, err := idx.IndexManifest()
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range m.Manifests {
					got = append(got, d.Annotations[refNameAnno])
				}
				want := kubeadmLists(tc.repo)
				sort.Strings(got)
				sort.Strings(want)
				if !slices.Equal(got, want) {
					t.Fatalf("OCI layout names:\n got %q\nwant %q (what kubeadm lists)", got, want)
				}
			}
			for _, ref := range kubeadmLists(tc.repo) {
				img, err := load(o, ref)
				if err != nil {
					t.Fatalf("%s (kubeadm pulls it): %v", ref, err)
				}
				bin := component(ref)
				if bad := verify(img, bin); len(bad) > 0 {
					t.Errorf("%s: %q", ref, bad)
				}
				files, err := contents(img)
				if err != nil {
					t.Fatal(err)
				}
				cf, _ := img.ConfigFile()
				entry := "/usr/local/bin/" + bin
				switch bin {
				case "flannel":
					entry = "/opt/bin/flanneld" // as upstream's image: its manifests run it there
				case "flannel-cni-plugin":
					entry = "/bin/cp" // flannel's manifest runs cp -f /flannel /opt/cni/bin/flannel
					if f, ok := files["flannel"]; !ok || f.hdr.Mode&0o111 == 0 {
						t.Errorf("%s: no executable /flannel", ref)
					}
				}
				// What flannel's manifest runs in its init containers.
				for b, p := range map[string]string{"flannel": "opt/bin/install-conf", "flannel-cni-plugin": "bin/cp"} {
					if f, ok := files[p]; bin == b && (!ok || f.hdr.Mode&0o111 == 0) {
						t.Errorf("%s: no executable /%s for flannel's manifest", ref, p)
					}
				}
				if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != entry {
					t.Errorf("%s: entrypoint %q, want %s", ref, got, entry)
				}
				if got := files["tmp"].hdr; got == nil || got.Mode&0o7777 != 0o1777 {
					t.Errorf("%s: /tmp is %+v, want mode 1777", ref, got)
				}
				if !strings.Contains(string(files["etc/passwd"].data), "nobody:x:65534") {
					t.Errorf("%s: /etc/passwd = %q", ref, files["etc/passwd"].data)
				}
				ctl, hasCtl := files["usr/local/bin/etcdctl"]
				if bin == "etcd" {
					if want, _ := os.Stat(filepath.Join(kit, "etcdctl")); !hasCtl || ctl.hdr.Mode&0o111 == 0 || ctl.hdr.Size != want.Size() {
						t.Errorf("etcd: /usr/local/bin/etcdctl missing, not executable or not the kit's (%+v); kubectl exec etcd-NODE -- etcdctl member list needs it", ctl.hdr)
					}
				} else if hasCtl {
					t.Errorf("%s carries etcdctl; only etcd's image does", ref)
				}
				if bin != "kube-proxy" && bin != "flannel" {
					if _, ok := files["usr/sbin/iptables-restore"]; ok {
						t.Errorf("%s carries iptables; only kube-proxy's and flannel's images need it", ref)
					}
					continue
				}
				for _, p := range []string{"usr/sbin/iptables-save", "usr/sbin/iptables-restore", "usr/sbin/ip6tables-restore"} {
					if f, ok := files[p]; !ok || f.hdr.Typeflag != tar.TypeSymlink || f.hdr.Linkname != "xtables-nft-multi" {
						t.Errorf("%s: /%s missing or not a link to xtables-nft-multi", bin, p)
					}
				}
				for _, p := range []string{"lib/x86_64-linux-gnu/libxtables.so.12", "lib/x86_64-linux-gnu/libnftnl.so.11",
					"lib/x86_64-linux-gnu/libc.so.6", "lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/xtables/libxt_mark.so"} {
					if _, ok := files[p]; !ok {
						t.Errorf("%s: /%s (ldd lists it or an extension) missing", bin, p)
					}
				}
				if !slices.Contains(cf.Config.Env, "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu") {
					t.Errorf("%s env %q lacks LD_LIBRARY_PATH", bin, cf.Config.Env)
				}
			}
			if err := checkAll(o); err != nil {
				t.Errorf("checkAll: %v", err)
			}
		})
	}
}

func TestPackingWithoutIptablesSaysWhatToInstall(t *testing.T) {
	kit, _, ldd := fakeKit(t)
	o := options{kit: kit, sysroot: t.TempDir(), ldd: ldd, version: "v1.33.13", oci: filepath.Join(t.TempDir(), "oci")}
	err := packAll(o)
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y iptables") {
		t.Fatalf("packAll without iptables = %v, want an error naming apt-get install -y iptables", err)
	}
}

func TestAMissingKitBinaryNamesScriptsK8sSh(t *testing.T) {
	// etcdctl is missing from a kit scripts/k8s.sh built before it built etcdctl.
	for _, bin := range []string{"etcd", "etcdctl"} {
		t.Run(bin, func(t *testing.T) {
			kit, sysroot, ldd := fakeKit(t)
			if err := os.Remove(filepath.Join(kit, bin)); err != nil {
				t.Fatal(err)
			}
			err := packAll(options{kit: kit, sysroot: sysroot, ldd: ldd, version: "v1.33.13", oci: filepath.Join(t.TempDir(), "oci")})
			if err == nil || !strings.Contains(err.Error(), "scripts/k8s.sh") || !strings.Contains(err.Error(), filepath.Join(kit, bin)+" ") {
				t.Fatalf("packAll without %s = %v, want an error naming %s and scripts/k8s.sh", bin, err, bin)
			}
		})
	}
}

// An etcd image packed before the kit had etcdctl fails -check, naming what is missing.
func TestCheckFindsAnEtcdImageWithoutEtcdctl(t *testing.T) {
	kit, sysroot, ldd := fakeKit(t)
	o := options{kit: kit, sysroot: sysroot, ldd: ldd, version: "v1.33.13", oci: filepath.Join(t.TempDir(), "oci"), out: io.Discard}
	if err := packAll(o); err != nil {
		t.Fatalf("packAll: %v", err)
	}
	const ref = "registry.k8s.io/etcd:3.5.24-0"
	old, err := buildFrom(o, "etcd", filepath.Join(kit, "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(o.oci)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.ReplaceImage(old, match.Annotation(refNameAnno, ref), layout.WithAnnotations(map[string]string{refNameAnno: ref})); err != nil {
		t.Fatal(err)
	}
	err = checkAll(o)
	if err == nil || !strings.Contains(err.Error(), ref+": /usr/local/bin/etcdctl is missing") || strings.Contains(err.Error(), "kube-apiserver") {
		t.Fatalf("checkAll with an etcd image without etcdctl = %v, want only %s: /usr/local/bin/etcdctl is missing", err, ref)
	}
}
