// Command labserve serves what the lab's simulated hosts fetch instead of the internet: a
// real OCI registry (go-containerregistry's) holding lab-built images under the control-plane
// image names of a Kubernetes version, and the signing key of a pkgs.k8s.io-style package
// repository (the SIMULATED apt installs the packages). It runs until killed.
package main

import (
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "host:port to serve on")
	version := flag.String("kubernetes-version", "v1.33.13", "the control-plane images of this version are seeded")
	ready := flag.String("ready-file", "", "written once the images are seeded")
	flag.Parse()
	if err := run(*listen, *version, *ready); err != nil {
		fmt.Fprintln(os.Stderr, "labserve:", err)
		os.Exit(1)
	}
}

func run(listen, version, readyFile string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	minor := version[:strings.LastIndex(version, ".")]
	mux := http.NewServeMux()
	mux.HandleFunc("/core:/stable:/"+minor+"/deb/Release.key", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "-----BEGIN PGP PUBLIC KEY BLOCK-----\nlab\n-----END PGP PUBLIC KEY BLOCK-----\n")
	})
	mux.Handle("/", registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	errc := make(chan error, 1)
	go func() { errc <- http.Serve(ln, mux) }()

	refs, err := kubeimages.ControlPlaneImages(version, "registry.k8s.io")
	if err != nil {
		return err
	}
	host := ln.Addr().String()
	for _, ref := range refs {
		img, err := random.Image(256<<10, 1)
		if err != nil {
			return err
		}
		cf, _ := img.ConfigFile()
		cf.OS, cf.Architecture = "linux", goruntime.GOARCH
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		dst, err := name.ParseReference(host+"/"+strings.TrimPrefix(ref, "registry.k8s.io/"), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img); err != nil {
			return fmt.Errorf("seed %s: %w", dst, err)
		}
	}
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte(host+"\n"), 0o644); err != nil {
			return err
		}
	}
	return <-errc
}
