package config

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerdParsesConfig1 has the real containerd (1.x, Debian's package) read the
// generated 1.x file with `containerd --config FILE config dump`, which starts no daemon, and
// checks that the settings arrive where the CRI plugin reads them.
func TestContainerdParsesConfig1(t *testing.T) {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("containerd is not installed (apt-get install -y containerd): %v", err)
		}
		t.Skipf("containerd is not installed here (CI installs it): %v", err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd --version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " 1.") && !strings.Contains(string(out), " v1.") {
		t.Skipf("this test reads the 1.x layout; installed: %s", out)
	}
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	for _, systemd := range []bool{true, false} {
		t.Run(map[bool]string{true: "systemd", false: "cgroupfs"}[systemd], func(t *testing.T) {
			dir := t.TempDir()
			o := baseOptions(1, systemd)
			o.SandboxImage = "registry.example.com:5000/k8s/pause:3.10"
			o.Root, o.State, o.GRPCAddress = filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "c.sock")
			o.RuncRoot, o.RestrictOOMScoreAdj = filepath.Join(dir, "runc"), true
			o.ConfigPath = filepath.Join(dir, "certs.d")
			doc, err := Containerd(o)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "config.toml")
			if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--config", file, "config", "dump").CombinedOutput()
			if err != nil {
				t.Fatalf("containerd config dump rejected the file: %v\n%s\nfile:\n%s", err, out, doc)
			}
			dump := dumpTables(string(out))
			want := map[string]map[string]string{
				"":                                {"version": "2", "root": tomlString(o.Root), "state": tomlString(o.State)},
				"grpc":                            {"address": tomlString(o.GRPCAddress)},
				cri:                               {"sandbox_image": `"registry.example.com:5000/k8s/pause:3.10"`, "restrict_oom_score_adj": "true"},
				cri + ".containerd":               {"default_runtime_name": `"runc"`},
				cri + ".containerd.runtimes.runc": {"runtime_type": `"io.containerd.runc.v2"`},
				cri + ".containerd.runtimes.runc.options": {"SystemdCgroup": tomlBool(systemd), "Root": tomlString(o.RuncRoot)},
				cri + ".cni":      {"bin_dir": `"/usr/lib/cni"`, "conf_dir": `"/etc/cni/net.d"`},
				cri + ".registry": {"config_path": tomlString(o.ConfigPath)},
			}
			for table, kvs := range want {
				for k, v := range kvs {
					if got, ok := dump[table][k]; !ok || got != v {
						t.Errorf("dump [%s] %s = %q (present %t), want %q", table, k, got, ok, v)
					}
				}
			}
			if _, err := os.Stat(o.Root); err == nil {
				t.Errorf("config dump created %s", o.Root)
			}
		})
	}
}

// dumpTables reads `containerd config dump` output leniently: table headers and
// single-line key = value pairs; other lines are ignored.
func dumpTables(s string) map[string]map[string]string {
	out := map[string]map[string]string{"": {}}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") && !strings.HasPrefix(line, "[[") {
			cur = line[1 : len(line)-1]
			if out[cur] == nil {
				out[cur] = map[string]string{}
			}
			continue
		}
		if k, v, ok := strings.Cut(line, " = "); ok {
			out[cur][k] = v
		}
	}
	return out
}
