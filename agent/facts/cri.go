package facts

import (
	"context"
	"io/fs"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
)

// runtimeFacts asks the container runtime behind the CRI socket for its name, version and
// readiness. A missing socket or a runtime that does not answer within Timeout leaves the
// fields it would have filled empty.
func (c *Collector) runtimeFacts(ctx context.Context) *agentv1.RuntimeFacts {
	rf := &agentv1.RuntimeFacts{Socket: c.CRISocket}
	if rf.Socket == "" {
		rf.Socket = DefaultCRISocket
	}
	path := c.hostPath(strings.TrimPrefix(rf.Socket, "unix://"))
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return rf
	}
	rf.SocketPresent = true

	// The target is only a name for the :authority header; the dialer decides where to go.
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
	)
	if err != nil {
		return rf
	}
	defer conn.Close()
	client := runtimeapi.NewRuntimeServiceClient(conn)

	vctx, cancel := context.WithTimeout(ctx, c.timeout())
	v, err := client.Version(vctx, &runtimeapi.VersionRequest{})
	cancel()
	if err == nil {
		rf.Name = v.GetRuntimeName()
		rf.Version = v.GetRuntimeVersion()
	}

	sctx, cancel := context.WithTimeout(ctx, c.timeout())
	s, err := client.Status(sctx, &runtimeapi.StatusRequest{})
	cancel()
	if err == nil {
		for _, cond := range s.GetStatus().GetConditions() {
			switch cond.GetType() {
			case runtimeapi.RuntimeReady:
				rf.RuntimeReady = cond.GetStatus()
			case runtimeapi.NetworkReady:
				rf.NetworkReady = cond.GetStatus()
			}
		}
	}
	return rf
}
