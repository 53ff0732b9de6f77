package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// apt-get / apt-mark SIMULATION for the Kubernetes packages of pkgs.k8s.io: sources under
// ROOT/etc/apt/sources.list.d, installed versions and holds under ROOT/var/lib/deckhand-sim/apt.
// Installing a package puts the kube tool SIMULATION (this binary) at ROOT/usr/bin/NAME;
// containernetworking-plugins puts it at ROOT/usr/lib/cni/{bridge,host-local,portmap,loopback}.

var kubePackages = map[string]bool{"kubelet": true, "kubeadm": true, "kubectl": true, "cri-tools": true, "kubernetes-cni": true}

var debSource = regexp.MustCompile(`^deb \[signed-by=(\S+)\] (https?://\S+/core:/stable:/v(\d+\.\d+)/deb/) /$`)

func aptDir(r string) string { return filepath.Join(r, "var/lib/deckhand-sim/apt") }

// repoMinor is the Kubernetes minor the configured pkgs.k8s.io source serves ("" if none).
func repoMinor(r string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(r, "etc/apt/sources.list.d/*.list"))
	for _, f := range files {
		for _, l := range readLines(f) {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			m := debSource.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			if !exists(filepath.Join(r, m[1])) {
				return "", fmt.Errorf("W: GPG error: %s InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY (keyring %s is missing)", m[2], m[1])
			}
			if !exists(filepath.Join(aptDir(r), "updated")) {
				return "", errors.New("E: Unable to locate package (run apt-get update after adding the source)")
			}
			return m[3], nil
		}
	}
	return "", nil
}

func aptGet(r string, args []string) (int, error) {
	var yes, allowHeld, downloadOnly bool
	var rest []string
	for _, a := range args {
		switch a {
		case "-y", "--yes", "-q", "-qq":
			yes = yes || a == "-y" || a == "--yes"
		case "--allow-change-held-packages":
			allowHeld = true
		case "--download-only", "-d":
			downloadOnly = true
		default:
			if strings.HasPrefix(a, "-") {
				return 100, fmt.Errorf("E: Command line option '%s' is not understood in combination with the other options.", a)
			}
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return 100, errors.New("E: No command given")
	}
	switch rest[0] {
	case "update":
		os.MkdirAll(aptDir(r), 0o755)
		if _, err := repoMinorNoUpdate(r); err != nil {
			return 100, err
		}
		return 0, os.WriteFile(filepath.Join(aptDir(r), "updated"), nil, 0o644)
	case "install":
		if !yes {
			return 1, errors.New("E: installing needs -y when there is no terminal (simulation)")
		}
		minor, err := repoMinor(r)
		if err != nil {
			return 100, err
		}
		for _, spec := range rest[1:] {
			name, ver, _ := strings.Cut(spec, "=")
			if name == "containernetworking-plugins" {
				// Debian's package puts the CNI plugins in /usr/lib/cni; these are the
				// simulation binary under their names (nothing in a simulated host runs a pod).
				self, _ := os.ReadFile(filepath.Join(r, "usr/bin/apt-get"))
				os.MkdirAll(filepath.Join(r, "usr/lib/cni"), 0o755)
				for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
					if err := os.WriteFile(filepath.Join(r, "usr/lib/cni", p), self, 0o755); err != nil {
						return 100, err
					}
				}
			}
			if !kubePackages[name] {
				continue // distribution packages: already part of the simulated host
			}
			if minor == "" {
				return 100, fmt.Errorf("E: Unable to locate package %s", name)
			}
			if ver == "" || !strings.HasPrefix(ver, minor+".") || !strings.HasSuffix(ver, "-1.1") {
				return 100, fmt.Errorf("E: Version '%s' for '%s' was not found", ver, name)
			}
			if downloadOnly {
				// Into the package cache: nothing installed changes.
				if err := os.WriteFile(filepath.Join(aptDir(r), name+".downloaded"), []byte(ver), 0o644); err != nil {
					return 100, err
				}
				fmt.Printf("Get: %s %s [downloaded]\n", name, ver)
				continue
			}
			held := exists(filepath.Join(aptDir(r), name+".hold"))
			cur, _ := os.ReadFile(filepath.Join(aptDir(r), name+".version"))
			if held && string(cur) != ver && !allowHeld {
				return 100, errors.New("E: Held packages were changed and -y was used without --allow-change-held-packages.")
			}
			if err := os.WriteFile(filepath.Join(aptDir(r), name+".version"), []byte(ver), 0o644); err != nil {
				return 100, err
			}
			if name == "kubelet" || name == "kubeadm" || name == "kubectl" {
				self, _ := os.ReadFile(filepath.Join(r, "usr/bin/apt-get"))
				if err := os.WriteFile(filepath.Join(r, "usr/bin", name), self, 0o755); err != nil {
					return 100, err
				}
				writeToolVersion(r, name, "v"+strings.TrimSuffix(ver, "-1.1"))
			}
			// The packages' systemd files: the kubelet's unit, and kubeadm's drop-in for it.
			switch name {
			case "kubelet":
				writeFile(r, "usr/lib/systemd/system/kubelet.service", "[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\n", 0o644)
			case "kubeadm":
				writeFile(r, "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", "[Service]\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nEnvironmentFile=-/etc/default/kubelet\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n", 0o644)
			}
			fmt.Printf("Setting up %s (%s) ...\n", name, ver)
		}
		return 0, nil
	}
	return 100, fmt.Errorf("E: Invalid operation %s", rest[0])
}

func repoMinorNoUpdate(r string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(r, "etc/apt/sources.list.d/*.list"))
	for _, f := range files {
		for _, l := range readLines(f) {
			if m := debSource.FindStringSubmatch(strings.TrimSpace(l)); m != nil && !exists(filepath.Join(r, m[1])) {
				return "", fmt.Errorf("W: GPG error: NO_PUBKEY: keyring %s is missing", m[1])
			}
		}
	}
	return "", nil
}

func aptMark(r string, args []string) (int, error) {
	if len(args) == 0 {
		return 100, errors.New("E: No command given")
	}
	switch args[0] {
	case "hold", "unhold":
		for _, p := range args[1:] {
			if !exists(filepath.Join(aptDir(r), p+".version")) {
				return 100, fmt.Errorf("E: Unable to locate package %s", p)
			}
			f := filepath.Join(aptDir(r), p+".hold")
			if args[0] == "hold" {
				os.WriteFile(f, nil, 0o644)
				fmt.Printf("%s set on hold.\n", p)
			} else {
				os.Remove(f)
			}
		}
		return 0, nil
	case "showhold":
		files, _ := filepath.Glob(filepath.Join(aptDir(r), "*.hold"))
		for _, f := range files {
			fmt.Println(strings.TrimSuffix(filepath.Base(f), ".hold"))
		}
		return 0, nil
	}
	return 100, fmt.Errorf("E: Invalid operation %s", args[0])
}

// The version commands of the kube tools SIMULATION, from
// ROOT/var/lib/deckhand-sim/versions/NAME.
func writeToolVersion(r, name, v string) {
	os.MkdirAll(filepath.Join(r, "var/lib/deckhand-sim/versions"), 0o755)
	os.WriteFile(filepath.Join(r, "var/lib/deckhand-sim/versions", name), []byte(v), 0o644)
}

func toolVersion(r, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(r, "var/lib/deckhand-sim/versions", name))
	if err != nil {
		return "", fmt.Errorf("%s (simulation): no version recorded for this binary", name)
	}
	return strings.TrimSpace(string(b)), nil
}

func kubelet(r string, args []string) (int, error) {
	if len(args) == 1 && args[0] == "--version" {
		v, err := toolVersion(r, "kubelet")
		if err != nil {
			return 1, err
		}
		fmt.Println("Kubernetes " + v)
		return 0, nil
	}
	return 1, fmt.Errorf("kubelet (simulation): unsupported arguments %v", args)
}

func kubeadmVersion(r string, args []string) (int, error) {
	if len(args) == 3 && args[0] == "version" && args[1] == "-o" && args[2] == "short" {
		v, err := toolVersion(r, "kubeadm")
		if err != nil {
			return 1, err
		}
		fmt.Println(v)
		return 0, nil
	}
	return 1, fmt.Errorf("kubeadm (simulation): unsupported arguments %v", args)
}
