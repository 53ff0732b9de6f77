package loadutil

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/features"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/version"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// SimAgent is one simulated deckhand-agent: it enrolled through the real Enroll RPC and
// holds an mTLS session like the real agent, but runs no task. It answers each
// TaskAssignment with a TaskAck and, after its task time, a SUCCEEDED TaskResult with the
// outputs later steps consume (kubeadm_init: ca_cert_hash; kubeadm_token: a minted token or
// the deleted ID). Like the real agent's journal, an assignment of a task it already
// answered gets the recorded result at once, replayed.
type SimAgent struct {
	Name     string
	index    int
	tls      *tls.Config
	taskTime atomic.Int64 // time.Duration
	started  atomic.Int64 // tasks run (not replayed)

	mu      sync.Mutex
	journal map[string]*taskv1.TaskResult
	running map[string]context.CancelFunc
	out     chan *agentv1.SessionRequest // the open session's, nil when none
	outDone <-chan struct{}
}

// Enroll enrolls node name with a bootstrap token as deckhand-agent does (a new key, a CSR,
// the certificate back) and returns the TLS configuration of its session.
func Enroll(ctx context.Context, client agentv1.AgentServiceClient, token, name string) (*tls.Config, error) {
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(name)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	resp, err := client.Enroll(rctx, &agentv1.EnrollRequest{Token: token, NodeName: name, CsrPem: csrPEM, MachineId: name})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("enroll %s: %w", name, err)
	}
	return clientconfig.New(nil, resp.GetCaPem(), resp.GetCertificatePem(), keyPEM).TLS()
}

// EnrollSimAgents enrolls one simulated agent per name through the controller at addr
// (32 at a time), with a token allowing that many usages and the controller CA's pin.
// Every task the agents get takes taskTime.
func EnrollSimAgents(ctx context.Context, addr, token, pin string, names []string, taskTime time.Duration) ([]*SimAgent, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(pki.PinnedTLS(pin))))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	client := agentv1.NewAgentServiceClient(cc)
	out := make([]*SimAgent, len(names))
	errs := make(chan error, 32)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				name := names[i]
				tc, err := Enroll(ctx, client, token, name)
				if err != nil {
					errs <- err
					return
				}
				out[i] = &SimAgent{Name: name, index: i, tls: tc,
					journal: map[string]*taskv1.TaskResult{}, running: map[string]context.CancelFunc{}}
				out[i].SetTaskTime(taskTime)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

func (a *SimAgent) ip() string { return simIP(a.index) }

// SetTaskTime sets how long the tasks it gets from now on take.
func (a *SimAgent) SetTaskTime(d time.Duration) { a.taskTime.Store(int64(d)) }

// Started is how many tasks it has run (answers replayed from its journal not counted).
func (a *SimAgent) Started() int64 { return a.started.Load() }

// simIP is the address of the i-th simulated node (index in EnrollSimAgents' names).
func simIP(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&0xff, i&0xff)
}

// Run keeps a session open until ctx ends, reconnecting like deckhand-agent: round the
// controller list (agent i starts at addrs[i mod len]), with a jittered exponential backoff
// from 100 ms to 10 s that starts over after a healthy session.
func (a *SimAgent) Run(ctx context.Context, addrs []string) {
	const initial, most = 100 * time.Millisecond, 10 * time.Second
	backoff := initial
	for i := a.index; ctx.Err() == nil; i++ {
		began := time.Now()
		_ = a.session(ctx, addrs[i%len(addrs)])
		if time.Since(began) > 10*initial+time.Second {
			backoff = initial
		}
		if !Wait(ctx, backoff/2+time.Duration(mrand.Int64N(int64(backoff)))) {
			return
		}
		backoff = min(2*backoff, most)
	}
}

func (a *SimAgent) session(ctx context.Context, addr string) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(a.tls)))
	if err != nil {
		return err
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(cc).Session(sctx)
	if err != nil {
		return err
	}
	hello := &agentv1.Hello{NodeName: a.Name, AgentVersion: version.Get().String(), Features: features.Agent(), Facts: &agentv1.Facts{Hostname: a.Name, OsId: "debian", OsVersion: "12",
		Kernel: "6.1.0", Arch: "amd64", Cpus: 2, MachineId: a.Name, IpAddresses: []string{a.ip()}}}
	if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Hello{Hello: hello}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	interval := first.GetWelcome().GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = 2 * time.Second
	}
	out := make(chan *agentv1.SessionRequest, 256)
	a.mu.Lock()
	a.out, a.outDone = out, sctx.Done()
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.out == out {
			a.out, a.outDone = nil, nil
		}
		a.mu.Unlock()
	}()
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch m := msg.GetMsg().(type) {
			case *agentv1.SessionResponse_Assignment:
				a.assign(ctx, m.Assignment.GetTask())
			case *agentv1.SessionResponse_Cancel:
				a.mu.Lock()
				if stop := a.running[m.Cancel.GetTaskId()]; stop != nil {
					stop()
				}
				a.mu.Unlock()
			}
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case m := <-out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case <-tick.C:
			a.mu.Lock()
			ids := make([]string, 0, len(a.running))
			for id := range a.running {
				ids = append(ids, id)
			}
			a.mu.Unlock()
			if err := stream.Send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_Heartbeat{Heartbeat: &agentv1.Heartbeat{RunningTaskIds: ids}}}); err != nil {
				return err
			}
		}
	}
}

// send queues m on the open session; with none, m is lost, as a real agent's message
// would be, and the controller's re-assignment on the next session gets the journal's answer.
func (a *SimAgent) send(m *agentv1.SessionRequest) {
	a.mu.Lock()
	out, done := a.out, a.outDone
	a.mu.Unlock()
	if out == nil {
		return
	}
	select {
	case out <- m:
	case <-done:
	}
}

// assign acks t and runs it for the task time, or answers from the journal.
func (a *SimAgent) assign(ctx context.Context, t *taskv1.Task) {
	if t.GetNode() != a.Name {
		return
	}
	id := t.GetId()
	a.mu.Lock()
	if res, ok := a.journal[id]; ok {
		a.mu.Unlock()
		res = proto.Clone(res).(*taskv1.TaskResult)
		res.Replayed = true
		a.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskAck{TaskAck: &agentv1.TaskAck{TaskId: id, Replayed: true}}})
		a.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskResult{TaskResult: res}})
		return
	}
	if _, busy := a.running[id]; busy {
		a.mu.Unlock()
		a.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskAck{TaskAck: &agentv1.TaskAck{TaskId: id}}})
		return // its result goes out when it finishes
	}
	tctx, cancel := context.WithCancel(ctx)
	a.running[id] = cancel
	a.mu.Unlock()
	a.started.Add(1)
	a.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskAck{TaskAck: &agentv1.TaskAck{TaskId: id}}})
	go func() {
		defer cancel()
		res := &taskv1.TaskResult{TaskId: id, Started: timestamppb.Now()}
		timer := time.NewTimer(time.Duration(a.taskTime.Load()))
		select {
		case <-timer.C:
			res.State = taskv1.TaskState_TASK_STATE_SUCCEEDED
			res.Outputs = a.outputs(t.GetSpec())
		case <-tctx.Done():
			timer.Stop()
			if ctx.Err() != nil {
				return // shutting down: not journaled
			}
			res.State = taskv1.TaskState_TASK_STATE_CANCELLED
			res.Error = &taskv1.TaskError{Reason: "CANCELLED", Message: "cancelled"}
		}
		res.Finished = timestamppb.Now()
		a.mu.Lock()
		delete(a.running, id)
		a.journal[id] = res
		a.mu.Unlock()
		a.send(&agentv1.SessionRequest{Msg: &agentv1.SessionRequest_TaskResult{TaskResult: res}})
	}()
}

// simCACertHash is the simulated cluster's CA pin.
var simCACertHash = func() string {
	h := sha256.Sum256([]byte("applyload cluster CA"))
	return "sha256:" + hex.EncodeToString(h[:])
}()

// outputs are what the real handlers return for the outputs later steps consume.
func (a *SimAgent) outputs(s *taskv1.TaskSpec) map[string]string {
	switch k := s.GetKind().(type) {
	case *taskv1.TaskSpec_KubeadmInit:
		ep := k.KubeadmInit.GetCluster().GetControlPlaneEndpoint()
		if ep == "" {
			ep = a.ip() + ":6443"
		}
		return map[string]string{"ca_cert_hash": simCACertHash, "control_plane_endpoint": ep}
	case *taskv1.TaskSpec_KubeadmToken:
		if id := k.KubeadmToken.GetDeleteTokenId(); id != "" {
			return map[string]string{"deleted": id}
		}
		out := map[string]string{"token": randToken(6) + "." + randToken(16), "ca_cert_hash": simCACertHash, "api_server": a.ip() + ":6443"}
		if k.KubeadmToken.GetControlPlane() {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			out["certificate_key"] = hex.EncodeToString(key)
		}
		return out
	case *taskv1.TaskSpec_NodeReady:
		// The registered node as Kubernetes reports it: its podCIDR (a /24 per node, as
		// kube-controller-manager hands them out) and InternalIP, which the network steps use.
		n := a.peer(k.NodeReady.GetNodeName())
		return map[string]string{"pod_cidr": fmt.Sprintf("10.%d.%d.0/24", 244+n>>8, n&0xff), "address": simIP(n)}
	}
	return nil
}

// peer is the index of the simulated node named name (prefix-N is N-1), or this agent's.
func (a *SimAgent) peer(name string) int {
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		if n, err := strconv.Atoi(name[i+1:]); err == nil && n > 0 {
			return n - 1
		}
	}
	return a.index
}

// randToken is n characters of [a-z0-9], as in a kubeadm bootstrap token.
func randToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
