package kubeimages

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// customRepository is the non-default repository of the golden files.
const customRepository = "registry.example.com:5000/k8s"

// TestControlPlaneImagesGolden compares the image list of every supported minor, with the
// default and with a custom repository, to testdata/images_<patch>_{default,custom}.golden.
func TestControlPlaneImagesGolden(t *testing.T) {
	for _, row := range SupportedVersions() {
		for _, c := range []struct{ name, repo string }{{"default", ""}, {"custom", customRepository}} {
			t.Run(row.KubeadmPatch+"/"+c.name, func(t *testing.T) {
				images, err := ControlPlaneImages(row.KubeadmPatch, c.repo)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", "images_"+row.KubeadmPatch+"_"+c.name+".golden"), strings.Join(images, "\n")+"\n")
			})
		}
	}
}

// TestGoldenFilesCoverTable fails when a golden file is left over from a minor that is no
// longer in the table, or when one is missing.
func TestGoldenFilesCoverTable(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "images_*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * len(SupportedVersions()); len(files) != want {
		t.Fatalf("testdata has %d image golden files, want %d (two per supported minor): %v", len(files), want, files)
	}
}

// TestControlPlaneImagesLikeRealKubeadm pins the output measured with a real kubeadm
// v1.33.13 (../shared/kubeadm/REFERENCE.md): kubernetes version v1.33.3, a custom
// repository, CoreDNS without the nested coredns/ path.
func TestControlPlaneImagesLikeRealKubeadm(t *testing.T) {
	got, err := ControlPlaneImages("v1.33.3", "registry.aliyuncs.com/google_containers")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"registry.aliyuncs.com/google_containers/kube-apiserver:v1.33.3",
		"registry.aliyuncs.com/google_containers/kube-controller-manager:v1.33.3",
		"registry.aliyuncs.com/google_containers/kube-scheduler:v1.33.3",
		"registry.aliyuncs.com/google_containers/kube-proxy:v1.33.3",
		"registry.aliyuncs.com/google_containers/coredns:v1.12.0",
		"registry.aliyuncs.com/google_containers/pause:3.10",
		"registry.aliyuncs.com/google_containers/etcd:3.5.24-0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got, err = ControlPlaneImages("1.33.1", "registry.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "registry.k8s.io/kube-apiserver:v1.33.1" || got[4] != "registry.k8s.io/coredns/coredns:v1.12.0" {
		t.Fatalf("default repository, version without v: got %v", got)
	}
}

func TestCoreDNSPathRule(t *testing.T) {
	for repo, want := range map[string]string{
		"":                        "registry.k8s.io/coredns/coredns:v1.12.0",
		"registry.k8s.io":         "registry.k8s.io/coredns/coredns:v1.12.0",
		"registry.k8s.io/mirror":  "registry.k8s.io/mirror/coredns:v1.12.0",
		"registry.k8s.io:443":     "registry.k8s.io:443/coredns:v1.12.0",
		"localhost:5000":          "localhost:5000/coredns:v1.12.0",
		"docker.io/coredns":       "docker.io/coredns/coredns:v1.12.0",
		"quay.io/k8s":             "quay.io/k8s/coredns:v1.12.0",
		"registry.example.com/k8": "registry.example.com/k8/coredns:v1.12.0",
	} {
		images, err := ControlPlaneImages("v1.33.0", repo)
		if err != nil {
			t.Fatal(err)
		}
		if images[4] != want {
			t.Errorf("repository %q: coredns image %q, want %q", repo, images[4], want)
		}
	}
}

func TestSandboxImageIsThePauseImage(t *testing.T) {
	for _, row := range SupportedVersions() {
		for _, repo := range []string{"", customRepository} {
			images, err := ControlPlaneImages(row.KubeadmPatch, repo)
			if err != nil {
				t.Fatal(err)
			}
			sandbox, err := SandboxImage(row.KubeadmPatch, repo)
			if err != nil {
				t.Fatal(err)
			}
			if sandbox != images[5] || !strings.Contains(sandbox, "/pause:"+row.Pause) {
				t.Errorf("%s %q: sandbox image %q, pause in the image list %q", row.KubeadmPatch, repo, sandbox, images[5])
			}
		}
	}
}

func TestControlPlaneImagesRejects(t *testing.T) {
	for _, tc := range []struct{ version, repo, field, msg string }{
		{"v1.29.15", "", "kubernetes_version", "is not supported (minor v1.29): supported minors are v1.30, v1.31, v1.32, v1.33, v1.34"},
		{"v1.35.0", "", "kubernetes_version", "supported minors are v1.30, v1.31, v1.32, v1.33, v1.34"},
		{"v2.33.0", "", "kubernetes_version", "is not supported"},
		{"v1.33", "", "kubernetes_version", "is not a release version vMAJOR.MINOR.PATCH"},
		{"v1.33.0-rc.1", "", "kubernetes_version", "is not a release version"},
		{"v1.33.0+build", "", "kubernetes_version", "is not a release version"},
		{"vv1.33.0", "", "kubernetes_version", "is not a release version"},
		{"v1.033.0", "", "kubernetes_version", "is not a release version"},
		{"", "", "kubernetes_version", "is not a release version"},
		{"stable-1", "", "kubernetes_version", "is not a release version"},
		{"v1.33.0", "https://registry.example.com", "image_repository", "has a URL scheme"},
		{"v1.33.0", "Registry.example.com", "image_repository", "upper-case"},
	} {
		t.Run(tc.version+" "+tc.repo, func(t *testing.T) {
			for name, call := range map[string]func() error{
				"ControlPlaneImages": func() error { _, err := ControlPlaneImages(tc.version, tc.repo); return err },
				"SandboxImage":       func() error { _, err := SandboxImage(tc.version, tc.repo); return err },
			} {
				err := call()
				var fe *FieldError
				if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("%s: got %v, want a FieldError for %s", name, err, tc.field)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("%s: message %q does not contain %q", name, err, tc.msg)
				}
			}
		})
	}
}

func TestSupportedVersionsIsACopy(t *testing.T) {
	v := SupportedVersions()
	v[0].Pause = "changed"
	if SupportedVersions()[0].Pause == "changed" {
		t.Fatal("SupportedVersions exposes the table")
	}
}

func TestVersionTable(t *testing.T) {
	rows := SupportedVersions()
	if rows[0].Minor != "v1.30" || rows[len(rows)-1].Minor != "v1.34" {
		t.Fatalf("table covers %s..%s, want v1.30..v1.34", rows[0].Minor, rows[len(rows)-1].Minor)
	}
	for _, r := range rows {
		v, got, err := ParseKubernetesVersion(r.KubeadmPatch)
		if err != nil || v != r.KubeadmPatch || got != r {
			t.Errorf("row %s: KubeadmPatch %s does not resolve to its own row: %v", r.Minor, r.KubeadmPatch, err)
		}
		for _, tag := range []string{r.Pause, r.Etcd, r.CoreDNS} {
			if !tagRE.MatchString(tag) {
				t.Errorf("row %s: bad tag %q", r.Minor, tag)
			}
		}
	}
	// The row the brief and a real kubeadm v1.33.13 pin.
	if _, r, _ := ParseKubernetesVersion("v1.33.0"); r != (Versions{Minor: "v1.33", KubeadmPatch: "v1.33.13", Pause: "3.10", Etcd: "3.5.24-0", CoreDNS: "v1.12.0"}) {
		t.Fatalf("v1.33 row is %+v", r)
	}
}

// golden compares got with the file at path, or rewrites the file with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
