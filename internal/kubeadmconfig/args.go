package kubeadmconfig

import "time"

// Kubeadm is the program every argv below starts with, looked up in PATH by the runner.
const Kubeadm = "kubeadm"

// DefaultTokenTTL is the lifetime TokenCreateArgs gives a join token when none is asked
// for: long enough to join a node, short enough not to linger.
const DefaultTokenTTL = time.Hour

// Each builder returns an argv for exec, never a shell string. The flags are those of
// kubeadm v1.33 (../shared/kubeadm/REFERENCE.md §3), and a command that reads --config
// combines it only with flags kubeadm allows beside --config (§3.14: upload-certs is one).
// Secrets (tokens, certificate keys) travel in the config files, not in argv, where any
// user of the host could read them in /proc.

// InitArgs is `kubeadm init --config configPath [--upload-certs]`.
func InitArgs(configPath string, uploadCerts bool) []string {
	argv := []string{Kubeadm, "init", "--config", configPath}
	if uploadCerts {
		argv = append(argv, "--upload-certs")
	}
	return argv
}

// JoinArgs is `kubeadm join --config configPath`; the API server, token, CA pin and
// control-plane settings are all in the JoinConfiguration.
func JoinArgs(configPath string) []string {
	return []string{Kubeadm, "join", "--config", configPath}
}

// TokenCreateArgs is `kubeadm token create --ttl TTL --print-join-command`, which mints a
// bootstrap token on a control plane and prints the worker join command with it. The TTL
// is rounded down to whole seconds; zero or less means DefaultTokenTTL, because kubeadm
// reads --ttl 0 as a token that never expires.
func TokenCreateArgs(ttl time.Duration) []string {
	ttl = ttl.Truncate(time.Second)
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return []string{Kubeadm, "token", "create", "--ttl", ttl.String(), "--print-join-command"}
}

// UploadCertsArgs is `kubeadm init phase upload-certs --upload-certs --config configPath`,
// run on a control plane: it uploads the control-plane certificates to the kubeadm-certs
// Secret (deleted after two hours) under a new certificate key, and prints the key.
// configPath is a file rendered by InitConfig for this control plane (the one `kubeadm
// init` ran with, on the first). Without it (configPath ""; the argv then has no
// --config) kubeadm v1.33.13 builds a default configuration first: it fetches
// https://dl.k8s.io/release/stable-1.txt for the Kubernetes version (up to 10 s, then
// falls back to its own), and on a host without a default route it fails with `cannot
// use "0.0.0.0" as the bind address for the API Server`. A config from InitConfig names
// the version, which avoids the first, and, when the node has an advertise address, the
// address, which avoids the second.
func UploadCertsArgs(configPath string) []string {
	argv := []string{Kubeadm, "init", "phase", "upload-certs", "--upload-certs"}
	if configPath != "" {
		argv = append(argv, "--config", configPath)
	}
	return argv
}

// TokenDeleteArgs is `kubeadm token delete -- id`, id being a token ID ([a-z0-9]{6}) or a
// whole token. The "--" ends the flags, so an id that starts with '-' is never read as
// one.
func TokenDeleteArgs(id string) []string {
	return []string{Kubeadm, "token", "delete", "--", id}
}

// ResetArgs is `kubeadm reset -f`: reset without the confirmation prompt. Cleaning what
// reset leaves behind (CNI configuration, iptables and IPVS rules, kubeconfigs) is the
// reset task's job.
func ResetArgs() []string {
	// --cleanup-tmp-dir: kubeadm keeps backups and temporary files in /etc/kubernetes/tmp
	// (a join can leave some) and cleans it only when asked.
	return []string{Kubeadm, "reset", "-f", "--cleanup-tmp-dir"}
}
