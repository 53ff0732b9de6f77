// Command labserve (lab tooling) serves what the lab's hosts fetch instead of the internet: a
// real OCI registry (go-containerregistry's, in memory) and, for the real lab (-kit), the
// kubelet, kubeadm and kubectl of the Kubernetes build kit under dl.k8s.io's layout
// (/release/VERSION/bin/linux/ARCH/NAME and NAME.sha256), which the product's packages task
// installs with `source: binaries`; -kit again serves a second kit's release beside it (the
// version an upgrade goes to). The real lab pushes the kits' images with scripts/k8skit.
// For the simulated lab (no -kit) it seeds small images under the control-plane image names
// and serves the signing key of a pkgs.k8s.io-style repository (the SIMULATED apt installs
// the packages). It runs until killed.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/deckhandhq/deckhand/internal/testkit/sim/seedimages"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "host:port to serve on")
	version := flag.String("kubernetes-version", "v1.33.13", "the control-plane images of this version are seeded")
	ready := flag.String("ready-file", "", "written once the images are seeded")
	var kits kitList
	flag.Var(&kits, "kit", "serve this build kit's binaries (scripts/k8s.sh prints its directory) under its kubeadm's version; repeatable; no simulated images")
	files := flag.String("files", "", "also serve the files of this directory under /files/ (a lab's manifests)")
	flag.Parse()
	if err := run(*listen, *version, *ready, kits, *files); err != nil {
		fmt.Fprintln(os.Stderr, "labserve:", err)
		os.Exit(1)
	}
}

// kitList is the repeatable -kit flag.
type kitList []string

func (k *kitList) String() string     { return strings.Join(*k, ",") }
func (k *kitList) Set(s string) error { *k = append(*k, s); return nil }

func run(listen, version, readyFile string, kits []string, files string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	minor := version[:strings.LastIndex(version, ".")]
	mux := http.NewServeMux()
	mux.HandleFunc("/core:/stable:/"+minor+"/deb/Release.key", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "-----BEGIN PGP PUBLIC KEY BLOCK-----\nlab\n-----END PGP PUBLIC KEY BLOCK-----\n")
	})
	served := map[string]string{}
	for _, kit := range kits {
		// The kit's release is what its kubeadm reports (scripts/k8s.sh checked it).
		out, err := exec.Command(filepath.Join(kit, "kubeadm"), "version", "-o", "short").Output()
		release := strings.TrimSpace(string(out))
		if err != nil || !strings.HasPrefix(release, "v") {
			return fmt.Errorf("-kit %s: its kubeadm does not report a version (%v %q): run scripts/k8s.sh VERSION", kit, err, out)
		}
		if other, ok := served[release]; ok {
			return fmt.Errorf("-kit %s and -kit %s are both %s: give each release once", other, kit, release)
		}
		served[release] = kit
		for _, name := range []string{"kubelet", "kubeadm", "kubectl"} {
			file := filepath.Join(kit, name)
			sum, err := fileSHA256(file)
			if err != nil {
				return fmt.Errorf("-kit: %w (run scripts/k8s.sh %s)", err, release)
			}
			at := fmt.Sprintf("/release/%s/bin/linux/%s/%s", release, runtime.GOARCH, name)
			mux.HandleFunc(at, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
			mux.HandleFunc(at+".sha256", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, sum+"\n") })
		}
	}
	if files != "" {
		mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(files))))
	}
	mux.Handle("/", registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	errc := make(chan error, 1)
	go func() { errc <- http.Serve(ln, mux) }()

	host := ln.Addr().String()
	if len(kits) == 0 {
		if err := seedimages.ControlPlane(host, version, 256<<10, 1); err != nil {
			return err
		}
	}
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte(host+"\n"), 0o644); err != nil {
			return err
		}
	}
	return <-errc
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
