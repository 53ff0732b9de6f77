// Package seedimages fills a registry with images built on the spot (random layers, the
// platform of this machine) under the control-plane image names of a Kubernetes version, for
// tests, benchmarks and the lab, which reach no registry on the internet.
package seedimages

import (
	"fmt"
	goruntime "runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

// ControlPlane pushes one image per name of `kubeadm config images list` for version to the
// plain-HTTP registry at host (host:port), each with layers random layers of layerSize bytes.
func ControlPlane(host, version string, layerSize, layers int64) error {
	refs, err := kubeimages.ControlPlaneImages(version, "registry.k8s.io")
	if err != nil {
		return err
	}
	for _, ref := range refs {
		img, err := random.Image(layerSize, layers)
		if err != nil {
			return err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf.OS, cf.Architecture = "linux", goruntime.GOARCH // containerd matches the platform
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		dst, err := name.ParseReference(host+"/"+strings.TrimPrefix(ref, "registry.k8s.io/"), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(dst, img); err != nil {
			return fmt.Errorf("push %s: %w", dst, err)
		}
	}
	return nil
}
