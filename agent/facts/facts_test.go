package facts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
)

// writeTree creates files under root; a path ending in "/" is a directory, a path in
// executables is written with mode 0755.
func writeTree(t *testing.T, root string, files map[string]string, executables ...string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if slices.Contains(executables, p) {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeExec stands in for the kube binaries. It records every argv it is asked to run.
type fakeExec struct {
	mu    sync.Mutex
	calls [][]string
	// reply answers one call; nil answers "not found".
	reply func(ctx context.Context, argv []string) ([]byte, error)
}

func (f *fakeExec) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	f.mu.Lock()
	f.calls = append(f.calls, argv)
	f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("probe ran without a deadline")
	}
	if f.reply == nil {
		return nil, errors.New("not found")
	}
	return f.reply(ctx, argv)
}

func (f *fakeExec) argvs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, strings.Join(c, " "))
	}
	slices.Sort(out)
	return out
}

// kubeReplies answers like real kubelet, kubeadm and kubectl 1.33.4 do, and fails any other
// argv, so a wrong flag shows up as a missing version.
func kubeReplies(_ context.Context, argv []string) ([]byte, error) {
	switch strings.Join(argv, " ") {
	case "kubelet --version":
		return []byte("Kubernetes v1.33.4\n"), nil
	case "kubeadm version -o short":
		return []byte("v1.33.4\n"), nil
	case "kubectl version --client -o json":
		return []byte(`{
  "clientVersion": {"major": "1", "minor": "33", "gitVersion": "v1.33.4", "platform": "linux/amd64"},
  "kustomizeVersion": "v5.6.0"
}
`), nil
	}
	return nil, errors.New("exit status 1")
}

// fakeRuntime is a minimal CRI runtime service.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	name, version              string
	runtimeReady, networkReady bool
	hangStatus                 bool // Status answers only when the caller gives up
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       f.name,
		RuntimeVersion:    f.version,
		RuntimeApiVersion: "v1",
	}, nil
}

func (f *fakeRuntime) Status(ctx context.Context, _ *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	if f.hangStatus {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: f.runtimeReady},
		{Type: runtimeapi.NetworkReady, Status: f.networkReady, Reason: "NetworkPluginNotReady"},
	}}}, nil
}

// serveCRI serves rt over a real gRPC server on a unix socket at sock.
func serveCRI(t *testing.T, sock string, rt runtimeapi.RuntimeServiceServer) {
	t.Helper()
	if len(sock) > 100 {
		t.Fatalf("socket path %q is too long for a unix socket; use a shorter test name or TMPDIR", sock)
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
}

// fakeProc builds a /proc with one directory per pid holding its comm.
func fakeProc(t *testing.T, comms map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"self/": "", "sys/kernel/": ""}
	for pid, comm := range comms {
		files[pid+"/comm"] = comm + "\n"
	}
	writeTree(t, dir, files)
	return dir
}

func assertFacts(t *testing.T, got, want *agentv1.Facts) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("facts:\ngot:  %s\nwant: %s", prototext.Format(got), prototext.Format(want))
	}
}

// checkAddrs asserts the reported addresses are bare, routable-looking IPs, then returns
// them so a whole-message comparison can include them.
func checkAddrs(t *testing.T, addrs []string) []string {
	t.Helper()
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			t.Errorf("ip_addresses has %q: want bare non-loopback, non-link-local IPs", a)
		}
	}
	return addrs
}

func TestCollectHost(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/hostname":                     "# set by the installer\nnode-a\n",
		"etc/os-release":                   "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n",
		"sys/fs/selinux/enforce":           "0",
		"etc/selinux/config":               "SELINUX=enforcing\n",
		"etc/machine-id":                   "0123456789abcdef0123456789abcdef\n",
		"proc/sys/kernel/osrelease":        "6.8.0-45-generic\n",
		"proc/meminfo":                     "MemTotal:       16318412 kB\nMemFree:         9000000 kB\nSwapTotal:       2097148 kB\nHugePages_Total:       0\n",
		"sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
		"run/systemd/system/":              "",
		"proc/self/status":                 "Name:\tdeckhand-agent\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n",
		"usr/bin/kubelet":                  "#!/bin/false\n",
		"usr/bin/kubeadm":                  "#!/bin/false\n",
		"usr/local/bin/kubectl":            "#!/bin/false\n",
	}, "usr/bin/kubelet", "usr/bin/kubeadm", "usr/local/bin/kubectl")
	serveCRI(t, filepath.Join(root, DefaultCRISocket), &fakeRuntime{
		name: "containerd", version: "v2.1.4", runtimeReady: true, networkReady: false,
	})
	ex := &fakeExec{reply: kubeReplies}
	c := &Collector{Root: root, Exec: ex.run, procDir: fakeProc(t, map[string]string{"1": "systemd", "812": "firewalld"})}

	got, err := c.Collect(t.Context())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	assertFacts(t, got, &agentv1.Facts{
		Hostname:    "node-a",
		OsId:        "ubuntu",
		OsVersion:   "24.04",
		OsName:      "Ubuntu 24.04.1 LTS",
		OsFamily:    "deb",
		Selinux:     "permissive",
		Kernel:      "6.8.0-45-generic",
		Arch:        runtime.GOARCH,
		Cpus:        uint32(runtime.NumCPU()),
		MemoryBytes: 16318412 * 1024,
		SwapBytes:   2097148 * 1024,
		IpAddresses: checkAddrs(t, got.GetIpAddresses()),
		Runtime: &agentv1.RuntimeFacts{
			Socket:        DefaultCRISocket,
			SocketPresent: true,
			Name:          "containerd",
			Version:       "v2.1.4",
			RuntimeReady:  true,
			NetworkReady:  false,
		},
		KubeVersions:    map[string]string{"kubelet": "v1.33.4", "kubeadm": "v1.33.4", "kubectl": "v1.33.4"},
		CgroupVersion:   2,
		CgroupDriver:    "systemd",
		FirewalldActive: true,
		MachineId:       "0123456789abcdef0123456789abcdef",
		CapSysResource:  proto.Bool(true),
	})
	wantArgv := []string{"kubeadm version -o short", "kubectl version --client -o json", "kubelet --version"}
	if got := ex.argvs(); !slices.Equal(got, wantArgv) {
		t.Errorf("commands run: got %q, want %q", got, wantArgv)
	}
}

// TestCollectBareHost is a host with nothing on it: every probe comes back empty and
// Collect still succeeds.
func TestCollectBareHost(t *testing.T) {
	ex := &fakeExec{reply: kubeReplies}
	c := &Collector{Root: t.TempDir(), Exec: ex.run, procDir: fakeProc(t, map[string]string{"1": "init"})}

	got, err := c.Collect(t.Context())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	assertFacts(t, got, &agentv1.Facts{
		Hostname:      hostname,
		Kernel:        unix.ByteSliceToString(u.Release[:]),
		Arch:          runtime.GOARCH,
		Cpus:          uint32(runtime.NumCPU()),
		IpAddresses:   checkAddrs(t, got.GetIpAddresses()),
		Runtime:       &agentv1.RuntimeFacts{Socket: DefaultCRISocket},
		CgroupVersion: 1,
		CgroupDriver:  "cgroupfs",
	})
	if calls := ex.argvs(); len(calls) != 0 {
		t.Errorf("ran %q on a host with no kube binaries", calls)
	}
}

func TestCollectCRIReadiness(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		runtimeReady, networkReady bool
	}{
		{"runtime only", true, false},
		{"network only", false, true},
		{"both", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			serveCRI(t, filepath.Join(root, "cri.sock"), &fakeRuntime{
				name: "cri-o", version: "1.33.2", runtimeReady: tc.runtimeReady, networkReady: tc.networkReady,
			})
			c := &Collector{Root: root, CRISocket: "/cri.sock", Exec: (&fakeExec{}).run}
			got, err := c.Collect(t.Context())
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			want := &agentv1.RuntimeFacts{
				Socket: "/cri.sock", SocketPresent: true, Name: "cri-o", Version: "1.33.2",
				RuntimeReady: tc.runtimeReady, NetworkReady: tc.networkReady,
			}
			if !proto.Equal(got.GetRuntime(), want) {
				t.Fatalf("runtime:\ngot:  %s\nwant: %s", prototext.Format(got.GetRuntime()), prototext.Format(want))
			}
		})
	}
}

// TestCollectDeadRuntime: a socket file nobody listens on (the runtime crashed) and a plain
// file where the socket should be are both reported without an error.
func TestCollectDeadRuntime(t *testing.T) {
	root := t.TempDir()
	lis, err := net.Listen("unix", filepath.Join(root, "stale.sock"))
	if err != nil {
		t.Fatal(err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()
	writeTree(t, root, map[string]string{"file.sock": "not a socket"})

	for _, tc := range []struct {
		socket string
		want   *agentv1.RuntimeFacts
	}{
		{"/stale.sock", &agentv1.RuntimeFacts{Socket: "/stale.sock", SocketPresent: true}},
		{"/file.sock", &agentv1.RuntimeFacts{Socket: "/file.sock"}},
	} {
		c := &Collector{Root: root, CRISocket: tc.socket, Exec: (&fakeExec{}).run}
		got, err := c.Collect(t.Context())
		if err != nil {
			t.Fatalf("Collect with %s: %v", tc.socket, err)
		}
		if !proto.Equal(got.GetRuntime(), tc.want) {
			t.Errorf("runtime with %s:\ngot:  %s\nwant: %s", tc.socket, prototext.Format(got.GetRuntime()), prototext.Format(tc.want))
		}
	}
}

// TestCollectHungProbes: a kube binary and a runtime that never answer cost one Timeout,
// not the agent's Hello; what did answer is still reported.
func TestCollectHungProbes(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"usr/bin/kubelet": "", "usr/bin/kubeadm": "",
	}, "usr/bin/kubelet", "usr/bin/kubeadm")
	serveCRI(t, filepath.Join(root, "cri.sock"), &fakeRuntime{name: "containerd", version: "v2.1.4", runtimeReady: true, hangStatus: true})
	ex := &fakeExec{reply: func(ctx context.Context, argv []string) ([]byte, error) {
		if argv[0] == "kubelet" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return kubeReplies(ctx, argv)
	}}
	c := &Collector{Root: root, CRISocket: "/cri.sock", Exec: ex.run, Timeout: 200 * time.Millisecond}

	start := time.Now()
	got, err := c.Collect(t.Context())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Collect took %v with a 200ms probe timeout", took)
	}
	if want := map[string]string{"kubeadm": "v1.33.4"}; !maps.Equal(got.GetKubeVersions(), want) {
		t.Errorf("kube_versions: got %v, want %v", got.GetKubeVersions(), want)
	}
	want := &agentv1.RuntimeFacts{Socket: "/cri.sock", SocketPresent: true, Name: "containerd", Version: "v2.1.4"}
	if !proto.Equal(got.GetRuntime(), want) {
		t.Errorf("runtime:\ngot:  %s\nwant: %s", prototext.Format(got.GetRuntime()), prototext.Format(want))
	}
}

func TestCollectContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := (&Collector{Root: t.TempDir()}).Collect(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Collect with a cancelled context: got %v, want context.Canceled", err)
	}

	// Cancelled while a probe runs.
	root := t.TempDir()
	writeTree(t, root, map[string]string{"usr/bin/kubelet": ""}, "usr/bin/kubelet")
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	ex := &fakeExec{reply: func(ctx context.Context, _ []string) ([]byte, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	f, err := (&Collector{Root: root, Exec: ex.run}).Collect(ctx)
	if !errors.Is(err, context.Canceled) || f != nil {
		t.Errorf("Collect cancelled mid-probe: got (%v, %v), want (nil, context.Canceled)", f, err)
	}
}

// TestDefaultExec runs real (script) binaries found under Root, argv only.
func TestDefaultExec(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		// Answers only the exact argv the collector should pass.
		"usr/local/bin/kubelet": "#!/bin/sh\nif [ \"$#\" = 1 ] && [ \"$1\" = --version ]; then echo 'Kubernetes v1.32.1'; else exit 3; fi\n",
		// Not executable: not a binary to run.
		"usr/bin/kubeadm": "#!/bin/sh\necho v1.32.1\n",
		// Fails: left out.
		"bin/kubectl": "#!/bin/sh\necho '{\"clientVersion\":{\"gitVersion\":\"v1.32.1\"}}'\nexit 1\n",
	}, "usr/local/bin/kubelet", "bin/kubectl")
	got, err := (&Collector{Root: root}).Collect(t.Context())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if want := map[string]string{"kubelet": "v1.32.1"}; !maps.Equal(got.GetKubeVersions(), want) {
		t.Errorf("kube_versions: got %v, want %v", got.GetKubeVersions(), want)
	}
}

func TestLookPath(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"usr/bin/kubectl": "", "usr/local/bin/kubectl": "", "usr/local/bin/kubeadm": "",
		"usr/bin/kubelet/": "",
	}, "usr/bin/kubectl", "usr/local/bin/kubectl", "usr/local/bin/kubeadm")
	c := &Collector{Root: root}
	for name, want := range map[string]string{
		"kubectl":        filepath.Join(root, "usr/local/bin/kubectl"), // PATH order: /usr/local/bin wins (a distribution kubectl in /usr/bin does not run)
		"kubeadm":        filepath.Join(root, "usr/local/bin/kubeadm"),
		"kubelet":        "", // a directory is not a binary
		"../bin/kubectl": "",
		"":               "",
	} {
		got, err := c.lookPath(name)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("lookPath(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestFilterAddrs(t *testing.T) {
	cidr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	got := filterAddrs([]net.Addr{
		cidr("127.0.0.1/8"), cidr("::1/128"), cidr("fe80::1c2:3ff:fe04:506/64"), cidr("169.254.10.1/16"),
		cidr("10.0.0.5/24"), cidr("2001:db8::5/64"), &net.IPAddr{IP: net.ParseIP("192.0.2.7")},
		&net.UnixAddr{Name: "/x", Net: "unix"},
	})
	if want := []string{"10.0.0.5", "2001:db8::5", "192.0.2.7"}; !slices.Equal(got, want) {
		t.Errorf("filterAddrs: got %q, want %q", got, want)
	}
}

// A container, an LXC guest or a root without CAP_SYS_RESOURCE: containerd cannot lower
// oom_score_adj there. The fact is the agent's effective set, bit 24.
func TestCollectCapSysResource(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status string
		want   *bool
	}{
		{"full root", "CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n", proto.Bool(true)},
		{"root without CAP_SYS_RESOURCE", "CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n", proto.Bool(false)},
		{"only CAP_SYS_RESOURCE", "CapEff:\t0000000001000000\n", proto.Bool(true)},
		{"permitted but not effective", "CapPrm:\t000001ffffffffff\nCapEff:\t0000000000000000\n", proto.Bool(false)},
		{"no CapEff line", "Name:\tdeckhand-agent\n", nil},
		{"unparsable", "CapEff:\tzz\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, map[string]string{"proc/self/status": "Name:\tdeckhand-agent\n" + tc.status})
			got, err := (&Collector{Root: root, Exec: (&fakeExec{}).run}).Collect(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if (got.CapSysResource == nil) != (tc.want == nil) || (tc.want != nil && got.GetCapSysResource() != *tc.want) {
				t.Fatalf("cap_sys_resource = %v, want %v", got.CapSysResource, tc.want)
			}
		})
	}
}

// The node's default address in the cluster is the one on the route to its controller: a
// controller reached through one of the host's addresses gives that address, and one on
// loopback (the same host) gives none.
func TestRouteAddress(t *testing.T) {
	ctx := context.Background()
	if got := RouteAddress(ctx, "127.0.0.1:7400"); got != "" {
		t.Errorf("RouteAddress(loopback) = %q, want none", got)
	}
	if got := RouteAddress(ctx, "not a host:port"); got != "" {
		t.Errorf("RouteAddress(bad address) = %q, want none", got)
	}
	own := ipAddresses()
	if len(own) == 0 {
		t.Skip("this machine has no non-loopback address to route to")
	}
	for _, a := range own {
		if got := RouteAddress(ctx, net.JoinHostPort(a, "7400")); got != a {
			t.Errorf("RouteAddress(%s) = %q, want %s (the kernel's source address towards the host's own address)", a, got, a)
		}
	}
}

// TestKubeVersionsReadOncePerBinary: a refresh runs a kube binary again only once its file
// changed (written over, or a new file renamed in); a run that read no version is tried
// again.
func TestKubeVersionsReadOncePerBinary(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"usr/bin/kubelet": "#!/bin/false\n", "usr/bin/kubeadm": "#!/bin/false\n",
	}, "usr/bin/kubelet", "usr/bin/kubeadm")
	kubeadm, kubelet, kubectl := "v1.33.4", "v1.33.4", "v1.33.4"
	ex := &fakeExec{reply: func(_ context.Context, argv []string) ([]byte, error) {
		switch argv[0] {
		case "kubelet":
			return []byte("Kubernetes " + kubelet + "\n"), nil
		case "kubectl":
			return []byte(`{"clientVersion":{"gitVersion":"` + kubectl + `"}}`), nil
		case "kubeadm":
			if kubeadm == "" {
				return nil, errors.New("exit status 1")
			}
			return []byte(kubeadm + "\n"), nil
		}
		return nil, fmt.Errorf("unexpected %q", argv)
	}}
	now := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	c := &Collector{Root: root, Exec: ex.run, procDir: fakeProc(t, map[string]string{"1": "init"}), now: func() time.Time { return now }}
	collect := func(want map[string]string, wantRuns []string) {
		t.Helper()
		ex.mu.Lock()
		ex.calls = nil
		ex.mu.Unlock()
		f, err := c.Collect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(f.GetKubeVersions(), want) {
			t.Errorf("kube_versions %v, want %v", f.GetKubeVersions(), want)
		}
		if got := ex.argvs(); !slices.Equal(got, wantRuns) {
			t.Errorf("commands run %q, want %q", got, wantRuns)
		}
	}
	both := map[string]string{"kubelet": "v1.33.4", "kubeadm": "v1.33.4"}
	collect(both, []string{"kubeadm version -o short", "kubelet --version"})
	collect(both, nil)

	// kubeadm upgraded in place (written over): read again.
	kubeadm = "v1.34.1"
	writeTree(t, root, map[string]string{"usr/bin/kubeadm": "#!/bin/false\n# v1.34.1\n"}, "usr/bin/kubeadm")
	collect(map[string]string{"kubelet": "v1.33.4", "kubeadm": "v1.34.1"}, []string{"kubeadm version -o short"})

	// kubelet replaced by a new file of the same size, renamed in: read again.
	tmp := filepath.Join(root, "usr/bin/.kubelet.new")
	if err := os.WriteFile(tmp, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "usr/bin/kubelet")); err != nil {
		t.Fatal(err)
	}
	collect(map[string]string{"kubelet": "v1.33.4", "kubeadm": "v1.34.1"}, []string{"kubelet --version"})

	// A kubeadm that fails leaves no version, and is tried on every refresh.
	kubeadm = ""
	writeTree(t, root, map[string]string{"usr/bin/kubeadm": "#!/bin/false\n# broken\n"}, "usr/bin/kubeadm")
	collect(map[string]string{"kubelet": "v1.33.4"}, []string{"kubeadm version -o short"})
	collect(map[string]string{"kubelet": "v1.33.4"}, []string{"kubeadm version -o short"})

	// Removed: no version, nothing run.
	if err := os.Remove(filepath.Join(root, "usr/bin/kubeadm")); err != nil {
		t.Fatal(err)
	}
	collect(map[string]string{"kubelet": "v1.33.4"}, nil)

	// The same file for VersionMaxAge: read again (a wrapper's answer may have changed).
	now = now.Add(VersionMaxAge - time.Second)
	collect(map[string]string{"kubelet": "v1.33.4"}, nil)
	now = now.Add(time.Second)
	kubelet = "v1.33.5"
	collect(map[string]string{"kubelet": "v1.33.5"}, []string{"kubelet --version"})

	// A kubelet put earlier on the path (/usr/local/bin before /usr/bin), the same bytes
	// and mode as the one read: the name finds another file, read again.
	kubelet = "v1.34.1"
	writeTree(t, root, map[string]string{"usr/local/bin/kubelet": "#!/bin/false\n"}, "usr/local/bin/kubelet")
	collect(map[string]string{"kubelet": "v1.34.1"}, []string{"kubelet --version"})

	// kubectl through a symlink (alternatives, a tarball's versioned files): retargeted to
	// a file of the same size, read again.
	writeTree(t, root, map[string]string{
		"opt/kube/kubectl-1.34.1": "#!/bin/false\n", "opt/kube/kubectl-1.34.2": "#!/bin/false\n",
	}, "opt/kube/kubectl-1.34.1", "opt/kube/kubectl-1.34.2")
	link := filepath.Join(root, "usr/bin/kubectl")
	if err := os.Symlink("../../opt/kube/kubectl-1.34.1", link); err != nil {
		t.Fatal(err)
	}
	kubectl = "v1.34.1"
	collect(map[string]string{"kubelet": "v1.34.1", "kubectl": "v1.34.1"}, []string{"kubectl version --client -o json"})
	collect(map[string]string{"kubelet": "v1.34.1", "kubectl": "v1.34.1"}, nil)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../opt/kube/kubectl-1.34.2", link); err != nil {
		t.Fatal(err)
	}
	kubectl = "v1.34.2"
	collect(map[string]string{"kubelet": "v1.34.1", "kubectl": "v1.34.2"}, []string{"kubectl version --client -o json"})
}
