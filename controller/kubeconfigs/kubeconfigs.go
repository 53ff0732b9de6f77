package kubeconfigs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/kubeuser"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
	"github.com/deckhandhq/deckhand/store"
)

var (
	// ErrNoCluster: no Kubernetes cluster is recorded.
	ErrNoCluster = errors.New("no Kubernetes cluster is recorded: create one first (deckctl init NODE or deckctl apply -f cluster.yaml)")
	// ErrNoSigner: no control plane can run the signing task now.
	ErrNoSigner = errors.New("no control plane can sign now")
)

// TaskFailedError is a signing task that did not succeed.
type TaskFailedError struct {
	TaskID, Node string
	State        taskv1.TaskState
	Err          *taskv1.TaskError
}

func (e *TaskFailedError) Error() string {
	msg := fmt.Sprintf("signing on %s (task %s) %s", e.Node, e.TaskID, strings.ToLower(strings.TrimPrefix(e.State.String(), "TASK_STATE_")))
	if e.Err != nil {
		msg += ": " + e.Err.GetMessage()
		if h := e.Err.GetHint(); h != "" {
			msg += "; " + h
		}
	}
	return msg
}

// Request is what a caller asks for. Its fields are checked at the API's edge.
type Request struct {
	Name string
	Role string // kubeuser.RoleAdmin or kubeuser.RoleView
	TTL  time.Duration
	CSR  string // PEM
}

// Kubeconfig is what a kubeconfig needs besides the caller's key.
type Kubeconfig struct {
	CertificatePEM, CAPEM, Server, ClusterName string
	Expires                                    time.Time
	TaskID, Node                               string
}

// Issuer runs the signing tasks.
type Issuer struct {
	st        store.Store
	nodes     *nodes.Registry
	tasks     *tasks.Service
	workflows *workflows.Service
}

// New returns an Issuer.
func New(st store.Store, reg *nodes.Registry, ts *tasks.Service, wf *workflows.Service) *Issuer {
	return &Issuer{st: st, nodes: reg, tasks: ts, workflows: wf}
}

// Signers are the control planes that may sign, in the cluster record's order: those whose
// agent is Ready.
func Signers(cl *apiv1.Cluster, state map[string]apiv1.NodeState) []string {
	var out []string
	for _, n := range cl.GetNodes() {
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE && state[n.GetName()] == apiv1.NodeState_NODE_STATE_READY {
			out = append(out, n.GetName())
		}
	}
	return out
}

// SignSpec is the task that signs req.
func SignSpec(req Request) *taskv1.TaskSpec {
	return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_KubeconfigSign{KubeconfigSign: &taskv1.KubeconfigSignSpec{
		CsrPem: req.CSR, Name: req.Name, Groups: kubeuser.Groups(req.Role), Ttl: durationpb.New(req.TTL),
		ViewBinding: req.Role == kubeuser.RoleView,
	}}}
}

// Server is the API server a kubeconfig names: the cluster's controlPlaneEndpoint, else
// the one the signing control plane's admin.conf names. A cluster whose endpoint is a local
// proxy on each node (load balancer type local, 127.0.0.1) is reached at the signing
// control plane's own API server, signerAddr:6443, from anywhere else.
func Server(spec *taskv1.ClusterSpec, signer, signerAddr string) string {
	if lb := spec.GetLoadBalancer(); lb.GetType() == lbconf.Local {
		if a, err := netip.ParseAddr(signerAddr); err == nil {
			return "https://" + netip.AddrPortFrom(a, lbconf.APIServerPort).String()
		}
		return signer
	}
	if ep := spec.GetControlPlaneEndpoint(); ep != "" {
		return "https://" + ep
	}
	return signer
}

// signerAddress is node's address in the recorded cluster.
func signerAddress(cl *apiv1.Cluster, node string) string {
	for _, n := range cl.GetNodes() {
		if n.GetName() == node {
			return n.GetAddress()
		}
	}
	return ""
}

// ClusterName is the cluster's name, kubeadm's default when none was given.
func ClusterName(spec *taskv1.ClusterSpec) string {
	if n := spec.GetClusterName(); n != "" {
		return n
	}
	return "kubernetes"
}

// Issue signs req's certificate request on a Ready control plane and waits for it, at most
// workflows.KubeconfigSignTimeout (or until ctx ends; the task is cancelled then).
func (i *Issuer) Issue(ctx context.Context, req Request) (*Kubeconfig, error) {
	cl, err := i.workflows.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	if cl == nil {
		return nil, ErrNoCluster
	}
	ns, err := i.nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	state := map[string]apiv1.NodeState{}
	for _, n := range ns {
		state[n.GetName()] = n.GetState()
	}
	signers := Signers(cl, state)
	if len(signers) == 0 {
		var cps []string
		for _, n := range cl.GetNodes() {
			if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
				cps = append(cps, fmt.Sprintf("%s is %s", n.GetName(), strings.ToLower(strings.TrimPrefix(state[n.GetName()].String(), "NODE_STATE_"))))
			}
		}
		return nil, fmt.Errorf("%w: no control plane's agent is Ready (%s): start its agent (deckctl nodes shows them)", ErrNoSigner, strings.Join(cps, ", "))
	}
	timeout := workflows.KubeconfigSignTimeout
	var rec *apiv1.TaskRecord
	var held []string
	for _, node := range signers {
		rec, err = i.workflows.CreateTask(ctx, &taskv1.Task{Node: node, Spec: SignSpec(req), Timeout: durationpb.New(timeout)})
		var le *workflows.LockedError
		if errors.As(err, &le) {
			held = append(held, fmt.Sprintf("%s by workflow %s", node, le.Workflow))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create the signing task on %s: %w", node, err)
		}
		break
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: every Ready control plane is held by a workflow (%s): run it again when the workflow ends", ErrNoSigner, strings.Join(held, ", "))
	}
	id, node := rec.GetTask().GetId(), rec.GetTask().GetNode()
	wctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	rec, err = i.tasks.Wait(wctx, id)
	if err != nil {
		// Nobody waits for it any more: it must not sign later.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		_, _ = i.tasks.Cancel(cctx, id)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("signing on %s (task %s) did not finish in %v: is its agent connected? (deckctl nodes): %w", node, id, timeout, err)
		}
		return nil, fmt.Errorf("wait for the signing task %s on %s: %w", id, node, err)
	}
	if rec.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		return nil, &TaskFailedError{TaskID: id, Node: node, State: rec.GetState(), Err: rec.GetResult().GetError()}
	}
	out := rec.GetResult().GetOutputs()
	kc := &Kubeconfig{CertificatePEM: out["certificate"], CAPEM: out["ca"], Server: Server(cl.GetSpec(), out["server"], signerAddress(cl, node)),
		ClusterName: ClusterName(cl.GetSpec()), TaskID: id, Node: node}
	kc.Expires, _ = time.Parse(time.RFC3339, out["expires"])
	if kc.CertificatePEM == "" || kc.CAPEM == "" || kc.Server == "" {
		return nil, &TaskFailedError{TaskID: id, Node: node, State: rec.GetState(), Err: &taskv1.TaskError{Reason: "SIGN_OUTPUT",
			Message: "the task returned no certificate, CA or API server", Hint: "upgrade the agent on " + node + " to this controller's version"}}
	}
	return kc, nil
}
