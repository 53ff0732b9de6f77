package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/sessions"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/tokens"
	"github.com/deckhandhq/deckhand/controller/transfers"
	"github.com/deckhandhq/deckhand/internal/bounded"
	"github.com/deckhandhq/deckhand/internal/pki"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// ErrUnavailable closes a session the agent should simply reopen elsewhere.
var ErrUnavailable = errors.New("controller unavailable")

// helloTimeout bounds how long a new session may take to say hello.
const helloTimeout = 10 * time.Second

// AgentServer implements agentv1.AgentServiceServer: enrollment and sessions.
type AgentServer struct {
	agentv1.UnimplementedAgentServiceServer
	CA       func() *pki.CA
	Tokens   *tokens.Manager
	Nodes    *nodes.Registry
	Sessions *sessions.Registry
	Tasks    *tasks.Dispatcher
	Limits   *sessions.Limiter
	Cluster  Cluster
	// Transfers are the uploads callers of this replica wait for.
	Transfers *transfers.Registry
	ReplicaID string
	Heartbeat time.Duration
	// CertValidity is how long node certificates are valid (pki.ClientValidity when zero);
	// agents renew theirs after two thirds of it.
	CertValidity time.Duration
	Log          *slog.Logger
}

// MaxMachineIDBytes bounds the machine ID an agent enrolls with (/etc/machine-id is 32).
const MaxMachineIDBytes = 256

// Enroll implements agentv1.AgentServiceServer.
//
// Its checks run in one order, so that no refusal costs a token use and a caller without a
// valid token learns nothing about existing nodes: the request's own fields, the token
// (checked, not spent), the name, and only then the use is spent. If the name is taken in
// the moment between, the use is given back.
func (s *AgentServer) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	name := req.GetNodeName()
	ca := s.CA()
	if n := len(req.GetMachineId()); n > MaxMachineIDBytes {
		return nil, invalid(&fieldError{"machine_id", fmt.Sprintf("is %d bytes long, at most %d: the agent sends /etc/machine-id", n, MaxMachineIDBytes)})
	}
	if err := pki.CheckCSR(req.GetCsrPem()); err != nil {
		return nil, invalid(&fieldError{"csr_pem", err.Error()})
	}
	if _, err := s.Tokens.Check(ctx, req.GetToken(), apiv1.TokenPurpose_TOKEN_PURPOSE_AGENT); err != nil {
		return nil, toStatus(err)
	}
	switch _, _, err := s.Nodes.Get(ctx, name); {
	case err == nil:
		return nil, toStatus(fmt.Errorf("%w: %s is already enrolled; if that machine is gone or was reinstalled, run deckctl node delete %s first, or choose another --node-name", nodes.ErrNameTaken, name, name))
	case !errors.Is(err, nodes.ErrNotFound):
		return nil, toStatus(err)
	}
	if _, err := s.Tokens.Consume(ctx, req.GetToken(), apiv1.TokenPurpose_TOKEN_PURPOSE_AGENT); err != nil {
		return nil, toStatus(err)
	}
	certPEM, serial, err := ca.SignCSR(req.GetCsrPem(), name, pki.RoleAgent, s.certValidity())
	if err == nil {
		err = s.Nodes.Enroll(ctx, name, req.GetMachineId(), serial)
	} else {
		err = fmt.Errorf("sign the node certificate: %w", err)
	}
	if err != nil {
		if rerr := s.Tokens.Refund(context.WithoutCancel(ctx), req.GetToken()); rerr != nil {
			s.Log.Warn("give back a token use after a refused enrollment", "node", name, "err", rerr)
		}
		return nil, toStatus(err)
	}
	s.Log.Info("node enrolled", "node", name, "serial", serial)
	return &agentv1.EnrollResponse{CertificatePem: certPEM, CaPem: ca.CertPEM, Endpoints: s.Cluster.Endpoints(ctx)}, nil
}

// Session implements agentv1.AgentServiceServer.
// MaxSessionWrites bounds the acks and results one session has being written at once.
const MaxSessionWrites = 64

func (s *AgentServer) Session(stream agentv1.AgentService_SessionServer) error {
	ctx := stream.Context()
	id, ok := IdentityFrom(ctx)
	if !ok || id.Role != pki.RoleAgent {
		return status.Error(codes.PermissionDenied, "only agents open sessions")
	}
	hello, err := recvHello(ctx, stream)
	if err != nil {
		return err
	}
	if hello.GetNodeName() != id.Name {
		claimed := bounded.String(hello.GetNodeName(), 80)
		return Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"node": claimed},
			"the certificate of node "+id.Name+" cannot speak for node "+claimed)
	}
	if err := sessions.CheckHello(hello); err != nil {
		return Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"node": id.Name},
			err.Error()+": the agent sent more than a controller accepts; upgrade the agent, or check the host, it may be compromised")
	}
	if err := s.checkIdentity(ctx, id); err != nil {
		return err
	}
	sess := s.Sessions.Open(ctx, id.Name, id.Serial, hello.GetFeatures())
	defer s.Tasks.SessionClosed(sess) // runs after Close below: nothing can re-add the session
	defer s.Sessions.Close(sess, context.Canceled)
	defer s.Limits.Report(id.Name) // the drops not logged yet
	// The node may have been deleted between the check and Open (the watch that cuts off
	// deleted nodes found no session then): check again now that the session is visible.
	if err := s.checkIdentity(ctx, id); err != nil {
		return err
	}
	if err := stream.Send(&agentv1.SessionResponse{Msg: &agentv1.SessionResponse_Welcome{Welcome: &agentv1.Welcome{
		HeartbeatInterval: durationpb.New(s.Heartbeat), ControllerId: s.ReplicaID,
	}}}); err != nil {
		return err
	}
	s.Log.Debug("agent session opened", "node", id.Name)
	go s.Tasks.SessionOpened(sess.Context(), sess)
	facts := &factsWriter{s: s, ctx: sess.Context(), node: id.Name, agent: nodes.Agent{Version: hello.GetAgentVersion(), Features: hello.GetFeatures()}}
	if f := hello.GetFacts(); f != nil {
		facts.offer(f)
	}

	// An ack or a result waits for a store commit: up to MaxSessionWrites of them are
	// written at once, so a node running many tasks at once (the control plane of a big
	// apply, every node of a fan-out) does not wait for one commit after another. A task's
	// ack and result may land in either order (a task's state only moves forward); a
	// result still waits for the events queued before it (tasks.Dispatcher.Result).
	// An agent that ends its stream (EOF) gets its writes done first, as when they were
	// written in turn; a session closed by the controller (replaced, cut off) does not wait
	// for them: they end with the stream's context.
	writes := make(chan struct{}, MaxSessionWrites)
	var writing sync.WaitGroup
	write := func(fn func()) {
		select {
		case writes <- struct{}{}:
		case <-ctx.Done():
			return
		}
		writing.Add(1)
		go func() {
			defer func() {
				<-writes
				writing.Done()
			}()
			fn()
		}()
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				writing.Wait()
				recvErr <- err
				return
			}
			s.Sessions.Touch(sess)
			switch m := msg.GetMsg().(type) {
			case *agentv1.SessionRequest_Heartbeat:
				s.Tasks.Running(ctx, sess, m.Heartbeat.GetRunningTaskIds())
			case *agentv1.SessionRequest_Hello:
				recvErr <- status.Error(codes.InvalidArgument, "hello may only be sent once per session")
				return
			case *agentv1.SessionRequest_TaskAck:
				write(func() { s.Tasks.Ack(ctx, id.Name, m.TaskAck) })
			case *agentv1.SessionRequest_TaskEvent:
				for _, ev := range s.Limits.Event(id.Name, m.TaskEvent) {
					s.Tasks.Event(sess, ev)
				}
			case *agentv1.SessionRequest_TaskResult:
				res, notes := s.Limits.Result(id.Name, m.TaskResult)
				for _, ev := range notes {
					s.Tasks.Event(sess, ev)
				}
				write(func() { s.Tasks.Result(ctx, id.Name, res) })
			case *agentv1.SessionRequest_Facts:
				facts.offer(m.Facts)
			}
		}
	}()
	for {
		select {
		case out := <-sess.Out:
			if a := out.GetAssignment(); a != nil {
				s.Limits.Assigned(id.Name, a.GetTask().GetId())
			}
			if err := stream.Send(out); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-sess.Context().Done():
			cause := context.Cause(sess.Context())
			if errors.Is(cause, sessions.ErrReplaced) {
				return status.Error(codes.Aborted, "session replaced by a newer one from the same node")
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(cause, ErrUnavailable) || errors.Is(cause, sessions.ErrBacklog) {
				return status.Errorf(codes.Unavailable, "session closed: %v; reconnect to another controller", cause)
			}
			return status.Errorf(codes.PermissionDenied, "session closed: %v", cause)
		}
	}
}

// factsWriter stores a session's facts, with the agent build its hello reported, at most
// at the node's facts write rate; facts arriving faster are coalesced into the newest. Its
// goroutine runs only while facts wait to be written, so an idle session holds none. The
// machine ID is always the enrolled one, never what the agent claims.
type factsWriter struct {
	s     *AgentServer
	ctx   context.Context // the session's
	node  string
	agent nodes.Agent

	mu      sync.Mutex
	pending *agentv1.Facts // the newest facts not written yet
	running bool           // run is writing, or ended with the session
}

// offer queues f (replacing facts still waiting) and starts the writer if it is idle.
func (w *factsWriter) offer(f *agentv1.Facts) {
	if err := w.s.Limits.Facts(w.node, f); err != nil {
		return
	}
	w.mu.Lock()
	replaced := w.pending != nil
	w.pending = f
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if replaced {
		w.s.Limits.Drop(w.node, sessions.DropFactsCoalesced, 1)
	}
	if start {
		go w.run()
	}
}

// take returns the waiting facts, if any; with idle, it marks the writer idle when none wait.
func (w *factsWriter) take(idle bool) *agentv1.Facts {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.pending
	w.pending = nil
	if f == nil && idle {
		w.running = false
	}
	return f
}

// run writes the waiting facts until none wait or the session ends.
func (w *factsWriter) run() {
	for f := w.take(true); f != nil; f = w.take(true) {
		if w.s.Limits.WaitFactsWrite(w.ctx, w.node) != nil {
			return // the session ended: running stays set, nothing more is written
		}
		if newer := w.take(false); newer != nil {
			f = newer // arrived while waiting: the newest wins
			w.s.Limits.Drop(w.node, sessions.DropFactsCoalesced, 1)
		}
		n, _, err := w.s.Nodes.Get(w.ctx, w.node)
		if err == nil {
			f.MachineId = n.GetFacts().GetMachineId()
			err = w.s.Nodes.UpdateFacts(w.ctx, w.node, w.agent, f)
		}
		if err != nil && w.ctx.Err() == nil {
			w.s.Log.Warn("update facts", "node", w.node, "err", err)
		}
	}
}

func recvHello(ctx context.Context, stream agentv1.AgentService_SessionServer) (*agentv1.Hello, error) {
	type res struct {
		msg *agentv1.SessionRequest
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := stream.Recv()
		ch <- res{m, err}
	}()
	t := time.NewTimer(helloTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.msg.GetHello()
		if h == nil {
			return nil, Errorf(codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, map[string]string{"field": "hello"}, "hello: the first message of a session must be a hello")
		}
		return h, nil
	case <-t.C:
		return nil, status.Error(codes.DeadlineExceeded, "no hello within 10s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// checkIdentity refuses (PermissionDenied) a node that was deleted or re-enrolled; any
// other failure (no quorum, timeouts) stays retryable for the agent.
func (s *AgentServer) checkIdentity(ctx context.Context, id pki.Identity) error {
	err := s.Nodes.CheckIdentity(ctx, id.Name, id.Serial)
	if errors.Is(err, nodes.ErrNotFound) || errors.Is(err, nodes.ErrNameTaken) {
		return Errorf(codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED, map[string]string{"node": id.Name}, err.Error())
	}
	return toStatus(err)
}
