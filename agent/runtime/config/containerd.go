package config

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
)

// Defaults for the empty fields of ContainerdOptions. The rendered file always states every
// value, defaults included, so it reads the same whatever containerd's own defaults are.
const (
	DefaultRoot        = "/var/lib/containerd"
	DefaultState       = "/run/containerd"
	DefaultGRPCAddress = "/run/containerd/containerd.sock"
	DefaultConfigPath  = "/etc/containerd/certs.d"
	DefaultCNIBinDir   = "/opt/cni/bin"
	DefaultCNIConfDir  = "/etc/cni/net.d"
)

// ContainerdOptions are the settings of containerd's config.toml.
type ContainerdOptions struct {
	// Major is containerd's major version: 1 (config version 2, one
	// io.containerd.grpc.v1.cri plugin) or 2 (config version 3, the split
	// io.containerd.cri.v1.images and io.containerd.cri.v1.runtime plugins).
	Major int
	// SandboxImage is the pause image, e.g. from kubeimages.SandboxImage. Required.
	SandboxImage string
	// SystemdCgroup selects the systemd cgroup driver for runc; it must match the kubelet's
	// cgroupDriver (kubeadm's default is systemd).
	SystemdCgroup bool
	// ConfigPath is the registry hosts directory (certs.d) holding <host>/hosts.toml; several
	// directories may be joined with ':'. Empty means DefaultConfigPath.
	ConfigPath string
	// CNIBinDir and CNIConfDir are the CNI plugin binaries and network configurations.
	// Empty means DefaultCNIBinDir and DefaultCNIConfDir.
	CNIBinDir, CNIConfDir string
	// Root, State and GRPCAddress are containerd's persistent directory, state directory
	// and socket path. Empty means DefaultRoot, DefaultState and DefaultGRPCAddress.
	Root, State, GRPCAddress string
	// RestrictOOMScoreAdj limits containers' oom_score_adj to containerd's own; needed where
	// containerd lacks CAP_SYS_RESOURCE (e.g. in a container).
	RestrictOOMScoreAdj bool
	// RuncRoot is runc's state root ([...runc.options] Root); empty leaves runc's default.
	// Give each containerd instance on one host its own.
	RuncRoot string
}

// Containerd renders a complete /etc/containerd/config.toml for containerd o.Major.x.
func Containerd(o ContainerdOptions) (string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	if o.Major == 1 {
		return containerd1(o), nil
	}
	return containerd2(o), nil
}

// withDefaults validates o and fills the empty paths.
func (o ContainerdOptions) withDefaults() (ContainerdOptions, error) {
	if o.Major != 1 && o.Major != 2 {
		return o, &kubeimages.FieldError{Field: "major", Value: strconv.Itoa(o.Major), Reason: "is not a supported containerd major version", Hint: "use 1 (containerd 1.x) or 2 (containerd 2.x)"}
	}
	if o.SandboxImage == "" {
		return o, &kubeimages.FieldError{Field: "sandbox_image", Reason: "is required", Hint: "give the pause image of the cluster's image repository, e.g. registry.k8s.io/pause:3.10"}
	}
	if _, err := kubeimages.ParseReference(o.SandboxImage); err != nil {
		return o, named("sandbox_image", err)
	}
	for _, p := range []struct {
		field string
		v     *string
		def   string
		list  bool
	}{
		{"config_path", &o.ConfigPath, DefaultConfigPath, true},
		{"cni_bin_dir", &o.CNIBinDir, DefaultCNIBinDir, false},
		{"cni_conf_dir", &o.CNIConfDir, DefaultCNIConfDir, false},
		{"root", &o.Root, DefaultRoot, false},
		{"state", &o.State, DefaultState, false},
		{"grpc_address", &o.GRPCAddress, DefaultGRPCAddress, false},
		{"runc_root", &o.RuncRoot, "", false},
	} {
		if *p.v == "" {
			*p.v = p.def
			continue
		}
		parts := []string{*p.v}
		if p.list {
			parts = strings.Split(*p.v, ":")
		}
		for _, part := range parts {
			if !path.IsAbs(part) || strings.ContainsFunc(part, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				hint := "use an absolute path"
				if p.field == "grpc_address" {
					hint = "use the socket's absolute path, without unix://"
				}
				return o, &kubeimages.FieldError{Field: p.field, Value: *p.v, Reason: "is not an absolute path", Hint: hint}
			}
		}
	}
	return o, nil
}

// named gives a field name to a FieldError that has none.
func named(field string, err error) error {
	var fe *kubeimages.FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Field = field
		return &c
	}
	return fmt.Errorf("%s: %w", field, err)
}

func header(major int) []string {
	return []string{
		fmt.Sprintf("containerd %d.x configuration, written by Deckhand's runtime task.", major),
		"Local changes are overwritten when the task runs again.",
	}
}

func topLevel(o ContainerdOptions, version int) []kv {
	return []kv{
		{"version", strconv.Itoa(version)},
		{"root", tomlString(o.Root)},
		{"state", tomlString(o.State)},
	}
}

func runcOptions(o ContainerdOptions) []kv {
	kvs := []kv{{"SystemdCgroup", tomlBool(o.SystemdCgroup)}}
	if o.RuncRoot != "" {
		kvs = append(kvs, kv{"Root", tomlString(o.RuncRoot)})
	}
	return kvs
}

// containerd1 is the containerd 1.x layout (config version 2): everything CRI lives in
// the io.containerd.grpc.v1.cri plugin. See containerd's docs/cri/config.md.
func containerd1(o ContainerdOptions) string {
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	return tomlDoc{
		header: header(1),
		top:    topLevel(o, 2),
		tables: []table{
			{"grpc", []kv{{"address", tomlString(o.GRPCAddress)}}},
			{cri, []kv{
				{"sandbox_image", tomlString(o.SandboxImage)},
				{"restrict_oom_score_adj", tomlBool(o.RestrictOOMScoreAdj)},
			}},
			{cri + ".containerd", []kv{{"default_runtime_name", tomlString("runc")}}},
			{cri + ".containerd.runtimes.runc", []kv{{"runtime_type", tomlString("io.containerd.runc.v2")}}},
			{cri + ".containerd.runtimes.runc.options", runcOptions(o)},
			{cri + ".cni", []kv{
				{"bin_dir", tomlString(o.CNIBinDir)},
				{"conf_dir", tomlString(o.CNIConfDir)},
			}},
			{cri + ".registry", []kv{{"config_path", tomlString(o.ConfigPath)}}},
		},
	}.String()
}

// containerd2 is the containerd 2.x layout (config version 3): images (pinned sandbox
// image, registry hosts) in io.containerd.cri.v1.images, containers and CNI in
// io.containerd.cri.v1.runtime. See containerd's docs/cri/config.md.
//
// The CNI directory is written as bin_dir, which every 2.x reads; containerd 2.1 added
// bin_dirs (a list) and reads bin_dir into it with a deprecation notice, while 2.0 would
// silently ignore bin_dirs and fall back to /opt/cni/bin.
func containerd2(o ContainerdOptions) string {
	const images = `plugins."io.containerd.cri.v1.images"`
	const runtime = `plugins."io.containerd.cri.v1.runtime"`
	return tomlDoc{
		header: header(2),
		top:    topLevel(o, 3),
		tables: []table{
			{"grpc", []kv{{"address", tomlString(o.GRPCAddress)}}},
			{images + ".pinned_images", []kv{{"sandbox", tomlString(o.SandboxImage)}}},
			{images + ".registry", []kv{{"config_path", tomlString(o.ConfigPath)}}},
			{runtime, []kv{{"restrict_oom_score_adj", tomlBool(o.RestrictOOMScoreAdj)}}},
			{runtime + ".containerd", []kv{{"default_runtime_name", tomlString("runc")}}},
			{runtime + ".containerd.runtimes.runc", []kv{{"runtime_type", tomlString("io.containerd.runc.v2")}}},
			{runtime + ".containerd.runtimes.runc.options", runcOptions(o)},
			{runtime + ".cni", []kv{
				{"bin_dir", tomlString(o.CNIBinDir)},
				{"conf_dir", tomlString(o.CNIConfDir)},
			}},
		},
	}.String()
}
