// Package kubeimages owns the control-plane image list and the registry setting it is
// pulled through.
//
// A [Registry] is the one registry setting of a cluster: the image repository kubeadm
// rewrites every image to, the ordered mirrors that serve it, and the registry hosts that
// are reached without TLS verification. The same Registry feeds the kubeadm configuration,
// the container runtime's sandbox (pause) image, its hosts.toml mirrors and the image pulls,
// so the pause image can never come from anywhere else than the control-plane images.
//
// [ControlPlaneImages] prints what `kubeadm config images list --kubernetes-version V
// --image-repository R` prints, in kubeadm's order, for the Kubernetes minors in the
// built-in table (see [SupportedVersions]). The pause, etcd and CoreDNS tags are kubeadm's
// own constants, and they belong to the kubeadm binary, not to the Kubernetes version asked
// for: each row records the kubeadm patch release it was taken from. Once kubeadm is on a
// host, its own `kubeadm config images list` is the authority; this table is the plan for
// hosts where it is not installed yet.
//
// [ParseReference] parses an image reference with Docker's defaults (docker.io,
// library/) and prints it back normalized.
//
// Every validation error wraps [ErrInvalid] and is a [*FieldError] naming the field that
// is wrong (image_repository, mirrors[i], insecure_registries[i], kubernetes_version), so
// the API edge maps it to InvalidArgument without matching on text.
package kubeimages
