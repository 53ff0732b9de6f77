package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// firewall-cmd SIMULATION: firewalld "runs" while ROOT/var/lib/deckhand-sim/firewalld/running
// exists; permanent and runtime ports are files of lines.
func firewallCmd(r string, args []string) (int, error) {
	dir := filepath.Join(r, "var/lib/deckhand-sim/firewalld")
	running := exists(filepath.Join(dir, "running"))
	permanent := false
	zone := ""
	var ops []string
	for _, a := range args {
		switch {
		case a == "--permanent":
			permanent = true
		case strings.HasPrefix(a, "--zone="):
			zone = strings.TrimPrefix(a, "--zone=")
		case strings.HasPrefix(a, "--add-source="), strings.HasPrefix(a, "--query-source="), strings.HasPrefix(a, "--remove-source="):
			ops = append(ops, a)
		case a == "--state", a == "--reload", a == "--list-ports", a == "--get-default-zone", strings.HasPrefix(a, "--get-zone-of-interface="),
			strings.HasPrefix(a, "--add-port="), strings.HasPrefix(a, "--query-port="),
			strings.HasPrefix(a, "--add-protocol="), strings.HasPrefix(a, "--query-protocol="),
			strings.HasPrefix(a, "--remove-port="), strings.HasPrefix(a, "--remove-protocol="):
			ops = append(ops, a)
		default:
			return 2, fmt.Errorf("usage: see firewall-cmd --help\nfirewall-cmd: error: unrecognized arguments: %s", a)
		}
	}
	if len(ops) != 1 {
		return 2, errors.New("firewall-cmd: error: exactly one action is needed")
	}
	op := ops[0]
	if op == "--state" {
		if running {
			fmt.Println("running")
			return 0, nil
		}
		fmt.Println("not running")
		return 252, nil
	}
	if !running {
		fmt.Println("FirewallD is not running")
		return 252, nil
	}
	// The default zone is "public"; an interface is in no zone (the default applies to it)
	// unless DIR/zone-of-IFACE names one.
	if op == "--get-default-zone" {
		fmt.Println("public")
		return 0, nil
	}
	if iface, ok := strings.CutPrefix(op, "--get-zone-of-interface="); ok {
		if z := readLines(filepath.Join(dir, "zone-of-"+filepath.Base(iface))); len(z) == 1 {
			fmt.Println(z[0])
			return 0, nil
		}
		fmt.Fprintln(os.Stderr, "no zone")
		return 2, nil
	}
	file := filepath.Join(dir, "runtime-ports")
	if permanent {
		file = filepath.Join(dir, "permanent-ports")
	}
	// Protocols (--add-protocol=vrrp) are kept with the ports, as "proto:NAME".
	if name, ok := strings.CutPrefix(op, "--add-protocol="); ok {
		op = "--add-port=proto:" + name
	}
	if name, ok := strings.CutPrefix(op, "--query-protocol="); ok {
		op = "--query-port=proto:" + name
	}
	if name, ok := strings.CutPrefix(op, "--remove-protocol="); ok {
		op = "--remove-port=proto:" + name
	}
	// Sources (--zone=Z --add-source=CIDR) too, as "source:Z:CIDR"; no zone is the default
	// zone, "public".
	if zone == "" {
		zone = "public"
	}
	for _, verb := range []string{"add", "query", "remove"} {
		if cidr, ok := strings.CutPrefix(op, "--"+verb+"-source="); ok {
			op = "--" + verb + "-port=source:" + zone + ":" + cidr
		}
	}
	ports := readLines(file)
	switch {
	case op == "--reload":
		if permanent {
			return 2, errors.New("firewall-cmd: error: --reload takes no --permanent")
		}
		return 0, writeLines(filepath.Join(dir, "runtime-ports"), readLines(filepath.Join(dir, "permanent-ports")))
	case op == "--list-ports":
		fmt.Println(strings.Join(ports, " "))
		return 0, nil
	case strings.HasPrefix(op, "--remove-port="):
		p := strings.TrimPrefix(op, "--remove-port=")
		if !contains(ports, p) {
			fmt.Println("Warning: NOT_ENABLED: " + p)
			return 0, nil
		}
		var rest []string
		for _, q := range ports {
			if q != p {
				rest = append(rest, q)
			}
		}
		fmt.Println("success")
		return 0, writeLines(file, rest)
	case strings.HasPrefix(op, "--query-port="):
		if contains(ports, strings.TrimPrefix(op, "--query-port=")) {
			fmt.Println("yes")
			return 0, nil
		}
		fmt.Println("no")
		return 1, nil
	default:
		p := strings.TrimPrefix(op, "--add-port=")
		if !validPort(p) {
			return 103, fmt.Errorf("Error: INVALID_PORT: %s", p)
		}
		if !contains(ports, p) {
			ports = append(ports, p)
		}
		fmt.Println("success")
		return 0, writeLines(file, ports)
	}
}

func validPort(p string) bool {
	if name, ok := strings.CutPrefix(p, "proto:"); ok {
		return name != "" && !strings.ContainsAny(name, "/ ")
	}
	if src, ok := strings.CutPrefix(p, "source:"); ok {
		_, cidr, _ := strings.Cut(src, ":")
		_, err := netip.ParsePrefix(cidr)
		return err == nil
	}
	num, proto, ok := strings.Cut(p, "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return false
	}
	for _, part := range strings.SplitN(num, "-", 2) {
		var n int
		if _, err := fmt.Sscanf(part, "%d", &n); err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// swapoff SIMULATION: swap areas are the lines of ROOT/proc/swaps after its header.
func swapoff(r string, args []string) (int, error) {
	if len(args) != 1 {
		return 1, errors.New("swapoff (simulation): use swapoff -a or swapoff DEVICE")
	}
	lines := readLines(filepath.Join(r, "proc/swaps"))
	if len(lines) == 0 {
		return 0, nil
	}
	keep := lines[:1]
	found := false
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if args[0] == "-a" || (len(f) > 0 && f[0] == args[0]) {
			found = true
			continue
		}
		keep = append(keep, l)
	}
	if !found && args[0] != "-a" {
		return 4, fmt.Errorf("swapoff: %s: swapoff failed: Invalid argument", args[0])
	}
	return 0, writeLines(filepath.Join(r, "proc/swaps"), keep)
}

// modprobe SIMULATION: a loaded module is a directory ROOT/sys/module/NAME; br_netfilter
// brings its sysctls, as the real module does.
func modprobe(r string, args []string) (int, error) {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return 1, errors.New("modprobe (simulation): use modprobe MODULE")
	}
	known := map[string]bool{"overlay": true, "br_netfilter": true, "ip_vs": true, "nf_conntrack": true}
	if !known[args[0]] {
		return 1, fmt.Errorf("modprobe: FATAL: Module %s not found in directory /lib/modules", args[0])
	}
	if err := os.MkdirAll(filepath.Join(r, "sys/module", args[0]), 0o755); err != nil {
		return 1, err
	}
	if args[0] == "br_netfilter" {
		dir := filepath.Join(r, "proc/sys/net/bridge")
		os.MkdirAll(dir, 0o755)
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
			if !exists(filepath.Join(dir, k)) {
				os.WriteFile(filepath.Join(dir, k), []byte("0\n"), 0o644)
			}
		}
	}
	return 0, nil
}

// sysctl SIMULATION: keys are files under ROOT/proc/sys.
func sysctl(r string, args []string) (int, error) {
	switch {
	case len(args) == 1 && args[0] == "--system":
		files, _ := filepath.Glob(filepath.Join(r, "etc/sysctl.d/*.conf"))
		sort.Strings(files)
		if exists(filepath.Join(r, "etc/sysctl.conf")) {
			files = append(files, filepath.Join(r, "etc/sysctl.conf"))
		}
		for _, f := range files {
			if code, err := applySysctl(r, f); err != nil {
				return code, err
			}
		}
		return 0, nil
	case len(args) == 2 && args[0] == "-p":
		return applySysctl(r, filepath.Join(r, args[1]))
	case len(args) == 2 && args[0] == "-n":
		b, err := os.ReadFile(filepath.Join(r, "proc/sys", strings.ReplaceAll(args[1], ".", "/")))
		if err != nil {
			return 255, fmt.Errorf("sysctl: cannot stat /proc/sys/%s: No such file or directory", strings.ReplaceAll(args[1], ".", "/"))
		}
		fmt.Print(string(b))
		return 0, nil
	}
	return 1, fmt.Errorf("sysctl (simulation): unsupported arguments %v", args)
}

func applySysctl(r, file string) (int, error) {
	for _, l := range readLines(file) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		p := filepath.Join(r, "proc/sys", strings.ReplaceAll(k, ".", "/"))
		if !exists(filepath.Dir(p)) {
			return 255, fmt.Errorf("sysctl: cannot stat /proc/sys/%s: No such file or directory", strings.ReplaceAll(k, ".", "/"))
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			return 255, err
		}
		fmt.Printf("%s = %s\n", k, v)
	}
	return 0, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func readLines(p string) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func writeLines(p string, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	content := strings.Join(lines, "\n")
	if len(lines) > 0 {
		content += "\n"
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// setenforce SIMULATION: setenforce 0|1|Permissive|Enforcing writes the mode to
// ROOT/sys/fs/selinux/enforce, as the kernel shows it; without that file SELinux is off and
// setenforce fails as the real one does.
func setenforce(r string, args []string) (int, error) {
	if len(args) != 1 {
		return 1, errors.New("usage:  setenforce [ Enforcing | Permissive | 1 | 0 ]")
	}
	mode := map[string]string{"0": "0", "1": "1", "permissive": "0", "enforcing": "1"}[strings.ToLower(args[0])]
	if mode == "" {
		return 1, errors.New("usage:  setenforce [ Enforcing | Permissive | 1 | 0 ]")
	}
	p := filepath.Join(r, "sys/fs/selinux/enforce")
	if !exists(p) {
		return 1, errors.New("setenforce: SELinux is disabled")
	}
	return 0, os.WriteFile(p, []byte(mode), 0o644)
}
