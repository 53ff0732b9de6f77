package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/internal/podnet"
)

// An air-gapped export carries the pod network provider's images beside the control
// plane's, from where the cluster pulls them.
func TestImagesTaskAddsTheProvidersImages(t *testing.T) {
	f := &taskFlags{action: "export", archive: "/var/tmp/k8s.tar", kubernetesVersion: "v1.33.13", imageRepository: "mirror.example.com:5000", networkProvider: "flannel"}
	s, err := f.spec("images")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mirror.example.com:5000/flannel-io/flannel:" + podnet.FlannelVersion}
	if got := s.GetImages().GetExtraImages(); !slices.Equal(got, want) {
		t.Errorf("extra images %q, want %q", got, want)
	}
	f.networkVersion = "v0.27.4" // an existing cluster's, as deckctl cluster shows it
	if s, _ := f.spec("images"); !slices.Equal(s.GetImages().GetExtraImages(), []string{"mirror.example.com:5000/flannel-io/flannel:v0.27.4"}) {
		t.Errorf("with --network-provider-version: %q", s.GetImages().GetExtraImages())
	}
	f.networkProvider = ""
	if s, _ := f.spec("images"); len(s.GetImages().GetExtraImages()) != 0 {
		t.Errorf("without --network-provider: extra images %q", s.GetImages().GetExtraImages())
	}
	f.networkProvider = "weave"
	if _, err := f.spec("images"); err == nil || !strings.Contains(err.Error(), "--network-provider") || !strings.Contains(err.Error(), "flannel") {
		t.Errorf("an unknown provider: %v", err)
	}
}
