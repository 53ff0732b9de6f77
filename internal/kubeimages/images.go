package kubeimages

// ControlPlaneImages returns what `kubeadm config images list --kubernetes-version V
// --image-repository R` prints, in kubeadm's order: kube-apiserver,
// kube-controller-manager, kube-scheduler, kube-proxy, coredns, pause, etcd. An empty repo
// means [DefaultImageRepository].
//
// CoreDNS follows kubeadm's path rule: under the default registry.k8s.io it is
// registry.k8s.io/coredns/coredns; under any other repository R it is R/coredns.
//
// The pause, etcd and CoreDNS tags are those of the kubeadm release recorded in the table
// row (Versions.KubeadmPatch); see [SupportedVersions].
func ControlPlaneImages(kubernetesVersion, repo string) ([]string, error) {
	v, row, repo, err := resolve(kubernetesVersion, repo)
	if err != nil {
		return nil, err
	}
	coredns := repo + "/coredns"
	if repo == DefaultImageRepository {
		coredns = repo + "/coredns/coredns"
	}
	return []string{
		repo + "/kube-apiserver:" + v,
		repo + "/kube-controller-manager:" + v,
		repo + "/kube-scheduler:" + v,
		repo + "/kube-proxy:" + v,
		coredns + ":" + row.CoreDNS,
		pauseImage(repo, row),
		repo + "/etcd:" + row.Etcd,
	}, nil
}

// SandboxImage returns the pause image for the runtime's sandbox, by the same rule and
// from the same repository as [ControlPlaneImages], so that kubeadm's check of the
// sandbox image agrees and the pause image is never pulled from elsewhere.
func SandboxImage(kubernetesVersion, repo string) (string, error) {
	_, row, repo, err := resolve(kubernetesVersion, repo)
	if err != nil {
		return "", err
	}
	return pauseImage(repo, row), nil
}

func pauseImage(repo string, row Versions) string {
	return repo + "/pause:" + row.Pause
}

func resolve(kubernetesVersion, repo string) (string, Versions, string, error) {
	v, row, err := ParseKubernetesVersion(kubernetesVersion)
	if err != nil {
		return "", Versions{}, "", err
	}
	repo, err = parseRepository("image_repository", repo)
	if err != nil {
		return "", Versions{}, "", err
	}
	return v, row, repo, nil
}
