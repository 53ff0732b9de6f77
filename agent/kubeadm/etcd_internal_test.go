package kubeadm

import (
	"strings"
	"testing"
)

// kubeadm's etcd manifest of a control plane that joined (trimmed): a restore's re-join
// rewrites its member list and keeps everything else.
const joinedEtcd = `apiVersion: v1
kind: Pod
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.250.0.24:2379
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://10.250.0.24:2380
    - --initial-cluster=node-1=https://10.250.0.21:2380,node-4=https://10.250.0.24:2380
    - --initial-cluster-state=existing
    - --name=node-4
    image: 10.250.0.1:5000/etcd:3.6.5-0
`

func TestEtcdManifestFlags(t *testing.T) {
	m := []byte(joinedEtcd)
	for flag, want := range map[string]string{"data-dir": "/var/lib/etcd", "name": "node-4", "initial-advertise-peer-urls": "https://10.250.0.24:2380", "missing": "def"} {
		if got := etcdFlag(m, flag, "def"); got != want {
			t.Errorf("%s = %q, want %q", flag, got, want)
		}
	}
	if im := imageRE.FindSubmatch(m); im == nil || string(im[1]) != "10.250.0.1:5000/etcd:3.6.5-0" {
		t.Errorf("image %q", im)
	}
	out, err := setEtcdFlag(m, "initial-cluster", "node-2=https://10.250.0.22:2380,node-4=https://10.250.0.24:2380")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(joinedEtcd, "node-1=https://10.250.0.21:2380,node-4", "node-2=https://10.250.0.22:2380,node-4", 1)
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}

	// The first control plane's manifest has no --initial-cluster-state: it is added after
	// --name, indented as the others.
	first := strings.Replace(joinedEtcd, "    - --initial-cluster-state=existing\n", "", 1)
	out, err = setEtcdFlag([]byte(first), "initial-cluster-state", "existing")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "    - --name=node-4\n    - --initial-cluster-state=existing\n    image:") {
		t.Fatalf("got\n%s", out)
	}
	if _, err := setEtcdFlag([]byte("spec: {}\n"), "initial-cluster-state", "existing"); err == nil {
		t.Error("a manifest without --name: no error")
	}
}
