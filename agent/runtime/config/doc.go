// Package config renders the container runtime's files: containerd's config.toml (the
// containerd 1.x layout, config version 2, and the containerd 2.x layout, config version
// 3), one certs.d/<host>/hosts.toml per mirrored registry, and /etc/crictl.yaml.
//
// The generators are pure functions of their options: no I/O, the same input gives the
// same bytes, so the runtime task can compare a rendered file with the one on the host to
// decide whether anything changes (and a dry-run reports exactly that). Writing, restarting
// and verifying containerd belong to the runtime task (package runtime), not here.
//
// Bad options are rejected with a *kubeimages.FieldError naming the field (errors.Is
// kubeimages.ErrInvalid), before anything is rendered.
package config
