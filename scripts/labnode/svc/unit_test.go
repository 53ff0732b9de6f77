package svc

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeFile writes root/p, creating directories.
func writeFile(t testing.TB, root, p, text string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testdata(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func argv(c []Command) [][]string {
	var out [][]string
	for _, x := range c {
		out = append(out, x.Args)
	}
	return out
}

func TestLoadRealUnits(t *testing.T) {
	type want struct {
		path        string
		dropIns     []string
		typ         string
		pre         [][]string
		preIgnore   bool
		start       [][]string
		envFiles    []EnvFile
		environment []string
		restart     string
		restartSec  time.Duration
		killMode    string
		limit       time.Duration
		stateDirs   []string
		stateMode   os.FileMode
		wantedBy    []string
		condition   []string
	}
	cases := []struct {
		name  string
		unit  string
		files map[string]string
		want  want
	}{{
		name: "kubelet with kubeadm's drop-in (Debian layout)",
		unit: "kubelet",
		files: map[string]string{
			"/lib/systemd/system/kubelet.service":                       testdata(t, "testdata/kubelet.service"),
			"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf":     testdata(t, "testdata/10-kubeadm.conf"),
			"/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": "[Service]\nExecStart=\nExecStart=/hidden/by/etc\n",
		},
		want: want{
			path:    "/lib/systemd/system/kubelet.service",
			dropIns: []string{"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"},
			typ:     "simple",
			start:   [][]string{{"/usr/bin/kubelet", "$KUBELET_KUBECONFIG_ARGS", "$KUBELET_CONFIG_ARGS", "$KUBELET_KUBEADM_ARGS", "$KUBELET_EXTRA_ARGS"}},
			envFiles: []EnvFile{{Path: "/var/lib/kubelet/kubeadm-flags.env", Optional: true},
				{Path: "/etc/default/kubelet", Optional: true}},
			environment: []string{
				"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf",
				"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"},
			restart: "always", restartSec: 10 * time.Second, killMode: "control-group", limit: 0,
			stateMode: 0o755, wantedBy: []string{"multi-user.target"},
			condition: []string{"/var/lib/kubelet/config.yaml"},
		},
	}, {
		name:  "Debian's containerd",
		unit:  "containerd.service",
		files: map[string]string{"/lib/systemd/system/containerd.service": testdata(t, "testdata/containerd.service")},
		want: want{
			path: "/lib/systemd/system/containerd.service", typ: "notify",
			pre: [][]string{{"/sbin/modprobe", "overlay"}}, preIgnore: true,
			start:   [][]string{{"/usr/bin/containerd"}},
			restart: "always", restartSec: 5 * time.Second, killMode: "process", limit: 10 * time.Second,
			stateMode: 0o755, wantedBy: []string{"multi-user.target"},
		},
	}, {
		name:  "Deckhand's agent",
		unit:  "deckhand-agent",
		files: map[string]string{"/etc/systemd/system/deckhand-agent.service": testdata(t, "../../../deploy/systemd/deckhand-agent.service")},
		want: want{
			path: "/etc/systemd/system/deckhand-agent.service", typ: "simple",
			start:    [][]string{{"/usr/local/bin/deckhand-agent", "--controller", "${DECKHAND_CONTROLLERS}", "--data-dir", "/var/lib/deckhand", "$DECKHAND_AGENT_ARGS"}},
			envFiles: []EnvFile{{Path: "/etc/default/deckhand-agent"}},
			restart:  "on-failure", restartSec: 2 * time.Second, killMode: "process", limit: 10 * time.Second,
			stateDirs: []string{"deckhand"}, stateMode: 0o700, wantedBy: []string{"multi-user.target"},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for p, text := range c.files {
				writeFile(t, root, p, text)
			}
			name, err := unitName(c.unit)
			if err != nil {
				t.Fatal(err)
			}
			u, err := loadUnit(root, DefaultUnitDirs, name)
			if err != nil {
				t.Fatal(err)
			}
			preIgnore := len(u.ExecStartPre) > 0 && u.ExecStartPre[0].IgnoreFailure
			got := want{path: u.Path, dropIns: u.DropIns, typ: u.Type, pre: argv(u.ExecStartPre), preIgnore: preIgnore,
				start: argv(u.ExecStart), envFiles: u.EnvironmentFiles, environment: u.Environment, restart: u.Restart,
				restartSec: u.RestartSec, killMode: u.KillMode, limit: u.StartLimitInterval, stateDirs: u.StateDirectory,
				stateMode: u.StateDirMode, wantedBy: u.WantedBy, condition: u.ConditionPathExists}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("loaded\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestKubeletCommandLineFromItsFiles(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/lib/systemd/system/kubelet.service", testdata(t, "testdata/kubelet.service"))
	writeFile(t, root, "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", testdata(t, "testdata/10-kubeadm.conf"))
	writeFile(t, root, "/var/lib/kubelet/kubeadm-flags.env",
		`KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10"`+"\n")
	writeFile(t, root, "/etc/default/kubelet", "# per-host flags\nKUBELET_EXTRA_ARGS='--cgroup-root=/n1 --node-ip=10.250.0.2'\n")
	u, err := loadUnit(root, DefaultUnitDirs, "kubelet.service")
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := environment(root, u)
	if err != nil {
		t.Fatal(err)
	}
	got := expandArgs(u.ExecStart[0].Args, env)
	want := []string{"/usr/bin/kubelet", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml",
		"--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
		"--pod-infra-container-image=registry.k8s.io/pause:3.10", "--cgroup-root=/n1", "--node-ip=10.250.0.2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kubelet argv\n%q\nwant\n%q", got, want)
	}
}

func TestDropInOrderAndPrecedence(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/lib/systemd/system/x.service", "[Service]\nExecStart=/bin/a\nRestartSec=1\n")
	writeFile(t, root, "/usr/lib/systemd/system/x.service", "[Service]\nExecStart=/bin/shadowed\n")
	writeFile(t, root, "/lib/systemd/system/x.service.d/20-b.conf", "[Service]\nRestartSec=2\n")
	writeFile(t, root, "/etc/systemd/system/x.service.d/30-c.conf", "[Service]\nRestartSec=3\nKillMode=mixed\n")
	writeFile(t, root, "/run/systemd/system/x.service.d/10-a.conf", "[Service]\nRestartSec=9\nKillMode=process\n")
	writeFile(t, root, "/lib/systemd/system/x.service.d/30-c.conf", "[Service]\nRestartSec=99\n")
	writeFile(t, root, "/etc/systemd/system/x.service.d/notes.txt", "[Service]\nRestartSec=77\n")
	u, err := loadUnit(root, DefaultUnitDirs, "x.service")
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/usr/lib/systemd/system/x.service" {
		t.Errorf("fragment %s, want the one in /usr/lib (it comes before /lib)", u.Path)
	}
	wantDrops := []string{"/run/systemd/system/x.service.d/10-a.conf", "/lib/systemd/system/x.service.d/20-b.conf",
		"/etc/systemd/system/x.service.d/30-c.conf"}
	if !reflect.DeepEqual(u.DropIns, wantDrops) {
		t.Errorf("drop-ins %q, want %q", u.DropIns, wantDrops)
	}
	if u.RestartSec != 3*time.Second || u.KillMode != "mixed" {
		t.Errorf("RestartSec %v KillMode %s: the last drop-in by name must win (3s, mixed)", u.RestartSec, u.KillMode)
	}
}

func TestUnitFileSyntax(t *testing.T) {
	text := "# comment\n; also a comment\n[Service]\nExecStart=/bin/prog \\\n  --a=1 \\\n# skipped inside a continuation\n  --b=\"two words\" '--c=$X'\n" +
		"Environment=\"A=1 B=2\" C=three 'D=four four' bad-name=x\nEnvironment=E=\\\"quoted\\\"\nnot an assignment\n[Install]\nWantedBy=multi-user.target  other.target\n"
	root := t.TempDir()
	writeFile(t, root, "/etc/systemd/system/s.service", text)
	u, err := loadUnit(root, DefaultUnitDirs, "s.service")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/prog", "--a=1", "--b=two words", "--c=$X"}; !reflect.DeepEqual(u.ExecStart[0].Args, want) {
		t.Errorf("ExecStart %q, want %q", u.ExecStart[0].Args, want)
	}
	if want := []string{"A=1 B=2", "C=three", "D=four four", `E="quoted"`}; !reflect.DeepEqual(u.Environment, want) {
		t.Errorf("Environment %q, want %q", u.Environment, want)
	}
	if want := []string{"multi-user.target", "other.target"}; !reflect.DeepEqual(u.WantedBy, want) {
		t.Errorf("WantedBy %q, want %q", u.WantedBy, want)
	}
}

func TestCommandPrefixes(t *testing.T) {
	cases := []struct {
		line         string
		path         string
		args         []string
		ignore, noEx bool
	}{
		{"/bin/x a", "/bin/x", []string{"/bin/x", "a"}, false, false},
		{"-/sbin/modprobe overlay", "/sbin/modprobe", []string{"/sbin/modprobe", "overlay"}, true, false},
		{"@/bin/x name a", "/bin/x", []string{"name", "a"}, false, false},
		{"-:+/bin/x $A", "/bin/x", []string{"/bin/x", "$A"}, true, true},
		{"!!/bin/x", "/bin/x", []string{"/bin/x"}, false, false},
	}
	for _, c := range cases {
		got, err := parseCommand(c.line)
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if got.Path != c.path || !reflect.DeepEqual(got.Args, c.args) || got.IgnoreFailure != c.ignore || got.NoExpand != c.noEx {
			t.Errorf("%s: got %+v", c.line, got)
		}
	}
}

func TestExpansion(t *testing.T) {
	env := map[string]string{"A": "one  two", "B": "x y", "EMPTY": "", "Q": `-a "b c" 'd'`, "OPEN": `x "y z`, "ESC": `a\ b`}
	cases := []struct {
		in, want []string
	}{
		{[]string{"p", "$A"}, []string{"p", "one", "two"}},
		{[]string{"p", "${A}"}, []string{"p", "one  two"}},
		{[]string{"p", "--b=${B}", "$UNSET", "$EMPTY", "x"}, []string{"p", "--b=x y", "x"}},
		{[]string{"p", "--a=$A", "$$A", "${UNSET}"}, []string{"p", "--a=$A", "$A", ""}},
		// $NAME splits the value as systemd does: quotes group and are removed.
		{[]string{"p", "$Q", "${Q}"}, []string{"p", "-a", "b c", "d", `-a "b c" 'd'`}},
		{[]string{"p", "$OPEN", "$ESC"}, []string{"p", "x", "y z", "a b"}},
	}
	for _, c := range cases {
		if got := expandArgs(c.in, env); !reflect.DeepEqual(got, c.want) {
			t.Errorf("expand %q = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestEnvFile(t *testing.T) {
	text := "# comment\n; comment\n\n  KUBELET_KUBEADM_ARGS=\"--a=1 --b=2\"\nexport=no\nX = spaced  \nQ='single $x \"q\"'\n" +
		"D=\"line1\\\nline2 \\\"in\\\" \\$HOME\"\nBARE=a\\ b\\\\c\n9BAD=x\nnoequals\nLAST=1"
	want := [][2]string{{"KUBELET_KUBEADM_ARGS", "--a=1 --b=2"}, {"export", "no"}, {"X", "spaced"},
		{"Q", `single $x "q"`}, {"D", `line1line2 "in" $HOME`}, {"BARE", `a b\c`}, {"LAST", "1"}}
	if got := parseEnvFile(text); !reflect.DeepEqual(got, want) {
		t.Errorf("parseEnvFile\n%q\nwant\n%q", got, want)
	}
}

func TestRefusedUnits(t *testing.T) {
	cases := []struct{ text, want string }{
		{"[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n", "more than one ExecStart="},
		{"[Service]\nType=forking\nExecStart=/bin/a\n", "Type=forking is not supported"},
		{"[Service]\nExecStart=/bin/a\nRestart=sometimes\n", "Restart=sometimes: want no, always, on-failure"},
		{"[Service]\nExecStart=/bin/a\nRestartSec=soon\n", "RestartSec=soon"},
		{"[Service]\nExecStart=/bin/a\nStateDirectoryMode=rwx\n", "StateDirectoryMode=rwx: want an octal mode"},
		{"[Service]\nDescription=x\n", "no ExecStart="},
		{"[Service]\nExecStart=/bin/a \"open\n", "unbalanced \" quote"},
		{"[Service]\nExecStart=/bin/a\nSuccessExitStatus=143 SIGNOPE\n", `SuccessExitStatus=143 SIGNOPE: "SIGNOPE" is neither an exit code`},
		{"[Service]\nExecStart=/bin/a\nSuccessExitStatus=256\n", `"256" is neither an exit code (0-255)`},
	}
	for _, c := range cases {
		root := t.TempDir()
		writeFile(t, root, "/etc/systemd/system/r.service", c.text)
		_, err := loadUnit(root, DefaultUnitDirs, "r.service")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %q", c.text, err, c.want)
		}
	}
}

func TestTimespans(t *testing.T) {
	cases := map[string]time.Duration{"10": 10 * time.Second, "100ms": 100 * time.Millisecond,
		"2min 5s": 125 * time.Second, "1.5s": 1500 * time.Millisecond, "0": 0, "infinity": 0, "1h": time.Hour}
	for in, want := range cases {
		if got, err := parseTimespan(in); err != nil || got != want {
			t.Errorf("parseTimespan(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ten", "5 fortnights"} {
		if _, err := parseTimespan(bad); err == nil {
			t.Errorf("parseTimespan(%q) accepted", bad)
		}
	}
}

func TestUnitNames(t *testing.T) {
	for in, want := range map[string]string{"kubelet": "kubelet.service", "kubelet.service": "kubelet.service",
		"multi-user.target": "multi-user.target", "systemd-resolved": "systemd-resolved.service"} {
		if got, err := unitName(in); err != nil || got != want {
			t.Errorf("unitName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "../etc/passwd", "a/b", ".."} {
		if _, err := unitName(bad); err == nil {
			t.Errorf("unitName(%q) accepted", bad)
		}
	}
}

func FuzzParseUnitFile(f *testing.F) {
	f.Add(testdata(f, "testdata/10-kubeadm.conf"))
	f.Add(testdata(f, "testdata/containerd.service"))
	f.Add("[Service]\nExecStart=-@/bin/x \"a b\" 'c' \\\n d\n")
	f.Fuzz(func(t *testing.T, text string) {
		s := newSettings()
		for _, e := range parseUnitFile(text) {
			if e.key == "" && e.section == "" {
				continue
			}
			_, _ = s.apply(e) // errors are fine; panics are not
		}
		u := &Unit{Name: "f.service"}
		if s.finish(u, true) == nil && len(u.ExecStart) == 0 {
			t.Fatal("finish accepted a unit without ExecStart")
		}
	})
}

func FuzzParseEnvFile(f *testing.F) {
	f.Add("A=1\nB=\"x\\\ny\"\nC='z'\n")
	f.Add("KUBELET_KUBEADM_ARGS=\"--a=1\"")
	f.Fuzz(func(t *testing.T, text string) {
		for _, kv := range parseEnvFile(text) {
			if !validEnvName(kv[0]) {
				t.Fatalf("invalid key %q", kv[0])
			}
		}
	})
}

func FuzzSplitWords(f *testing.F) {
	f.Add(`/usr/bin/kubelet $A "b c" 'd' e\ f`)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err == nil {
			_ = expandArgs(words, map[string]string{"A": "x y"})
		}
	})
}

// Debian's haproxy and keepalived units as the manager loads them: three quoted
// assignments on one Environment= line, ExecReload= in order, SuccessExitStatus=, the
// sandboxing setting it ignores, ConditionFileNotEmpty=, and their command lines expanded
// from the unit's own environment.
func TestLoadLoadBalancerUnits(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/lib/systemd/system/haproxy.service", testdata(t, "testdata/haproxy.service"))
	writeFile(t, root, "/lib/systemd/system/keepalived.service", testdata(t, "testdata/keepalived.service"))
	writeFile(t, root, "/etc/default/keepalived", "DAEMON_ARGS=\"\"\n")

	h, err := loadUnit(root, DefaultUnitDirs, "haproxy.service")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CONFIG=/etc/haproxy/haproxy.cfg", "PIDFILE=/run/haproxy.pid", "EXTRAOPTS=-S /run/haproxy-master.sock"}; !reflect.DeepEqual(h.Environment, want) {
		t.Errorf("haproxy Environment %q, want %q", h.Environment, want)
	}
	if h.Type != "notify" || h.KillMode != "mixed" || h.Restart != "always" || !reflect.DeepEqual(h.SuccessCodes, []int{143}) || len(h.SuccessSignals) != 0 {
		t.Errorf("haproxy Type %s KillMode %s Restart %s SuccessExitStatus %v %v", h.Type, h.KillMode, h.Restart, h.SuccessCodes, h.SuccessSignals)
	}
	env, _, err := environment(root, h)
	if err != nil {
		t.Fatal(err)
	}
	env["MAINPID"] = "4242"
	got := [][]string{expandArgs(h.ExecStart[0].Args, env)}
	for _, c := range h.ExecReload {
		got = append(got, expandArgs(c.Args, env))
	}
	want := [][]string{
		{"/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg", "-p", "/run/haproxy.pid", "-S", "/run/haproxy-master.sock"},
		{"/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg", "-c", "-q", "-S", "/run/haproxy-master.sock"},
		{"/bin/kill", "-USR2", "4242"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("haproxy ExecStart and ExecReload\n%q\nwant\n%q", got, want)
	}

	k, err := loadUnit(root, DefaultUnitDirs, "keepalived.service")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/keepalived/keepalived.conf"}; !reflect.DeepEqual(k.ConditionFileNotEmpty, want) {
		t.Errorf("keepalived ConditionFileNotEmpty %q, want %q", k.ConditionFileNotEmpty, want)
	}
	if k.Type != "simple" || len(k.Adjustments) != 1 {
		t.Errorf("keepalived Type %s, adjustments %q: the lab runs it as simple and says so", k.Type, k.Adjustments)
	}
	env, _, err = environment(root, k)
	if err != nil {
		t.Fatal(err)
	}
	env["MAINPID"] = "7"
	if got, want := [][]string{expandArgs(k.ExecStart[0].Args, env), expandArgs(k.ExecReload[0].Args, env)},
		[][]string{{"/usr/sbin/keepalived", "--dont-fork"}, {"/bin/kill", "-HUP", "7"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("keepalived ExecStart and ExecReload %q, want %q", got, want)
	}
}

// Every real unit the lab runs loads without a warning: what the manager does not
// implement there is on the ignored list. Anything else is reported, not dropped.
func TestUnitWarnings(t *testing.T) {
	for name, file := range map[string]string{
		"haproxy.service": "testdata/haproxy.service", "keepalived.service": "testdata/keepalived.service",
		"containerd.service": "testdata/containerd.service", "kubelet.service": "testdata/kubelet.service",
		"deckhand-agent.service":      "../../../deploy/systemd/deckhand-agent.service",
		"deckhand-controller.service": "../../../deploy/systemd/deckhand-controller.service",
	} {
		root := t.TempDir()
		writeFile(t, root, "/lib/systemd/system/"+name, testdata(t, file))
		if name == "kubelet.service" {
			writeFile(t, root, "/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", testdata(t, "testdata/10-kubeadm.conf"))
		}
		u, err := loadUnit(root, DefaultUnitDirs, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(u.Warnings) > 0 {
			t.Errorf("%s: warnings %q", name, u.Warnings)
		}
	}

	root := t.TempDir()
	writeFile(t, root, "/etc/systemd/system/w.service", "[Unit]\nAfter=x.target\n[Service]\nExecStart=/bin/a\nProtectSystem=strict\n"+
		"User=nobody\nExecStop=/bin/b\n[X-Custom]\nAnything=1\n[Install]\nAlias=v.service\n")
	u, err := loadUnit(root, DefaultUnitDirs, "w.service")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/etc/systemd/system/w.service:6: User= in [Service] is not supported by the lab service manager; ignoring it",
		"/etc/systemd/system/w.service:7: ExecStop= in [Service] is not supported by the lab service manager; ignoring it",
		"/etc/systemd/system/w.service:11: Alias= in [Install] is not supported by the lab service manager; ignoring it",
	}
	if !reflect.DeepEqual(u.Warnings, want) {
		t.Errorf("warnings\n%q\nwant\n%q", u.Warnings, want)
	}
}

// doc.go lists every setting the manager ignores on purpose.
func TestIgnoredDirectivesDocumented(t *testing.T) {
	doc := testdata(t, "doc.go")
	for k := range ignoredDirectives {
		_, key, _ := strings.Cut(k, ".")
		if !regexp.MustCompile(`\b` + key + `\b`).MatchString(doc) {
			t.Errorf("%s is ignored but doc.go does not list it", k)
		}
	}
}
