package kubeadm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/deckhandhq/deckhand/agent/host"
)

// ipAddrs is `ip -j -d addr show` of a node in kube-proxy's ipvs mode: kube-ipvs0 holds the
// service addresses (a cluster IP, the DNS service, an external IP, an IPv6 cluster IP);
// eth0 the node's address and a keepalived VIP; cni0 the pod gateway.
const ipAddrs = `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
{"ifindex":2,"ifname":"eth0","flags":["UP"],"linkinfo":{"info_kind":""},"addr_info":[{"family":"inet","local":"10.250.0.11","prefixlen":24},{"family":"inet","local":"10.250.0.100","prefixlen":32},{"family":"inet6","local":"fe80::1","prefixlen":64}]},
{"ifindex":3,"ifname":"cni0","flags":["UP"],"linkinfo":{"info_kind":"bridge"},"addr_info":[{"family":"inet","local":"10.244.1.1","prefixlen":24}]},
{"ifindex":4,"ifname":"kube-ipvs0","flags":["BROADCAST","NOARP"],"linkinfo":{"info_kind":"dummy"},"addr_info":[{"family":"inet","local":"10.96.0.1","prefixlen":32},{"family":"inet","local":"10.96.0.10","prefixlen":32},{"family":"inet","local":"192.0.2.50","prefixlen":32},{"family":"inet6","local":"fd00:10:96::1","prefixlen":128}]}]`

// ipvsSave is `ipvsadm --save -n` on that node: kube-proxy's services and the host's own.
const ipvsSave = `-A -t 10.96.0.1:443 -s rr
-a -t 10.96.0.1:443 -r 10.250.0.11:6443 -m -w 1
-A -u 10.96.0.10:53 -s rr
-A -t 10.96.0.10:53 -s rr
-A --sctp-service 192.0.2.50:7777 -s rr
-A -t [fd00:10:96::1]:443 -s rr
-A -t 10.250.0.11:30080 -s rr
-A -t 10.244.1.1:32767 -s rr
-A -u 127.0.0.1:30053 -s rr
-A -t 10.250.0.100:6443 -s wlc
-a -t 10.250.0.100:6443 -r 10.250.0.11:6443 -g -w 1
-A -t 10.250.0.11:8080 -s rr
-A -t 10.250.0.11:29999 -s rr
-A -t 10.250.0.11:32768 -s rr
-A -t 198.51.100.7:30080 -s rr
-A -f 100 -s rr
`

func TestKubeProxyIPVS(t *testing.T) {
	withoutIPVSLink := strings.Replace(ipAddrs, `"ifname":"kube-ipvs0"`, `"ifname":"other0"`, 1)
	withoutIPVSLink = strings.Replace(withoutIPVSLink, `"fd00:10:96::1"`, `"fd00:10:96::2"`, 1)
	cases := []struct {
		name, save, addrs string
		want              []string
		err               string
	}{{
		name: "kube-proxy's services go, the host's stay",
		save: ipvsSave, addrs: ipAddrs,
		want: []string{"-t 10.96.0.1:443", "-u 10.96.0.10:53", "-t 10.96.0.10:53", "--sctp-service 192.0.2.50:7777", "-t [fd00:10:96::1]:443",
			"-t 10.250.0.11:30080", "-t 10.244.1.1:32767", "-u 127.0.0.1:30053"},
	}, {
		// kube-ipvs0 is gone: its addresses no longer tell; only the NodePorts on the node's
		// own addresses do (other0's addresses are the node's: 10.96.0.1:443 is not a NodePort).
		name: "without kube-ipvs0, only NodePorts on the node's addresses",
		save: ipvsSave, addrs: `[{"ifname":"eth0","addr_info":[{"local":"10.250.0.11"}]}]`,
		want: []string{"-t 10.250.0.11:30080"},
	}, {
		name: "a link of another name holds no service addresses",
		save: ipvsSave, addrs: withoutIPVSLink,
		want: []string{"-t 10.250.0.11:30080", "-t 10.244.1.1:32767", "-u 127.0.0.1:30053"},
	}, {
		name: "only the host's own",
		save: "-A -t 10.250.0.100:6443 -s wlc\n-a -t 10.250.0.100:6443 -r 10.250.0.11:6443 -g -w 1\n", addrs: ipAddrs,
	}, {
		name: "no IPVS at all", save: "", addrs: "",
	}, {
		name: "an unknown service kind", save: "-A -x 10.96.0.1:443 -s rr\n", addrs: ipAddrs, err: "unknown service kind -x",
	}, {
		name: "a service without a port", save: "-A -t 10.96.0.1 -s rr\n", addrs: ipAddrs, err: `line 1: "-A -t 10.96.0.1 -s rr"`,
	}, {
		name: "not ip's JSON", save: ipvsSave, addrs: "1: lo: <LOOPBACK,UP>", err: "ip -j -d addr show: not the JSON list",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			del, err := kubeProxyIPVS(c.save, []byte(c.addrs))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range del {
				got = append(got, s.String())
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("to delete:\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

// A host with ipvsadm installed (keepalived recommends it) but no IPVS in its kernel has no
// virtual service to delete: its reset goes on. Any other failure of ipvsadm stops it.
func TestIPVSUnavailable(t *testing.T) {
	noIPVS := &host.CommandError{Argv: []string{"ipvsadm", "--save", "-n"}, Err: errors.New("exit status 2"),
		Stderr: "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n"}
	if !ipvsUnavailable(noIPVS) || !ipvsUnavailable(fmt.Errorf("list: %w", noIPVS)) {
		t.Error("ipvsadm's answer on a kernel without IPVS is not recognised")
	}
	for _, err := range []error{
		&host.CommandError{Argv: []string{"ipvsadm"}, Err: errors.New("exit status 1"), Stderr: "Permission denied (you must be root)"},
		errors.New("Protocol not available"), // not ipvsadm's answer
	} {
		if ipvsUnavailable(err) {
			t.Errorf("%v taken for a kernel without IPVS", err)
		}
	}
}
