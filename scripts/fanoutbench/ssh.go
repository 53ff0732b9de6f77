package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sshdConfig is every host's sshd configuration: key-only root login from the benchmark's
// client key, no PAM and no DNS lookups (nothing in the lab resolves), the key files in the
// run's temp directory. StrictModes is off because that directory is under /tmp, which is
// world-writable. Sessions get home as HOME: a plain Debian root home (see plainHome), not
// this machine's /root, which the lab hosts share. Nothing else differs from a plain Debian
// sshd. Each sshd gets its own ListenAddress on the command line.
func sshdConfig(hostKey, authorizedKeys, home string) string {
	return strings.Join([]string{
		"Port 22",
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorizedKeys,
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"UseDNS no",
		"StrictModes no",
		"PrintMotd no",
		"PidFile none",
		"LogLevel ERROR",
		"Subsystem sftp /usr/lib/openssh/sftp-server",
		// Quoted: the temp directory may hold a space. PermitUserRC: /root/.ssh/rc
		// would run from this machine's /root (sshd takes it from the password entry).
		`SetEnv "HOME=` + home + `"`,
		"PermitUserRC no",
		"",
	}, "\n")
}

// ansibleDirs are where Ansible keeps its state during the run, all in the temp directory.
type ansibleDirs struct {
	inventory, home, localTmp, remoteTmp, controlPathDir, clientKey, knownHosts string
}

// ansibleCfg is the benchmark's ansible.cfg. Only forks, pipelining, host key checking and
// the interpreter differ from Ansible's defaults; the rest keeps Ansible's files in the temp
// directory. ssh_args is left at its default (-C -o ControlMaster=auto -o ControlPersist=60s),
// so connections are reused between runs less than 60 s apart. interpreter_python skips
// Ansible's interpreter discovery (one more round trip per host on every run): it favours
// Ansible.
func ansibleCfg(forks int, d ansibleDirs) string {
	return strings.Join([]string{
		"[defaults]",
		"inventory = " + d.inventory,
		fmt.Sprintf("forks = %d", forks),
		"host_key_checking = False",
		"gathering = implicit",
		"interpreter_python = /usr/bin/python3",
		"remote_user = root",
		"private_key_file = " + d.clientKey,
		"home = " + d.home,
		"local_tmp = " + d.localTmp,
		"remote_tmp = " + d.remoteTmp,
		"retry_files_enabled = False",
		"",
		"[ssh_connection]",
		"pipelining = True",
		"control_path_dir = " + d.controlPathDir,
		// Host keys go to the temp directory, not root's ~/.ssh/known_hosts.
		"ssh_extra_args = -o UserKnownHostsFile=" + d.knownHosts,
		"",
	}, "\n")
}

// inventory lists every host under its node name with its address.
func inventory(hosts []host) string {
	var b strings.Builder
	b.WriteString("[lab]\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s ansible_host=%s\n", h.name, h.ip)
	}
	return b.String()
}

// plainHome writes the dot files a Debian host's root starts with (base-files' dot.bashrc and
// dot.profile; empty files where this machine lacks them) into dir, the lab hosts' home.
// Bash sources ~/.bashrc for every command sshd runs, Ansible's included, and the lab hosts
// share this machine's files: a developer's /root/.bashrc (pyenv init, about 9 s a shell
// under the benchmark's load) would be measured as Ansible's time, which no fleet host pays.
func plainHome(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"bashrc", "profile"} {
		b, err := os.ReadFile(filepath.Join("/usr/share/base-files", "dot."+f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "."+f), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
