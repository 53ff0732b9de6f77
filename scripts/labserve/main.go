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
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/deckhandhq/deckhand/internal/sim/seedimages"
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

	host := ln.Addr().String()
	if err := seedimages.ControlPlane(host, version, 256<<10, 1); err != nil {
		return err
	}
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte(host+"\n"), 0o644); err != nil {
			return err
		}
	}
	return <-errc
}
