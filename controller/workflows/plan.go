package workflows

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/clusterspec"
	"github.com/deckhandhq/deckhand/internal/kubeadmconfig"
	"github.com/deckhandhq/deckhand/internal/kubeimages"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	"github.com/deckhandhq/deckhand/internal/podnet"
	"github.com/deckhandhq/deckhand/internal/taskkinds"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Controller actions (steps the controller runs itself).
const (
	ActionRecordCluster = "record-cluster"
	ActionRecordNode    = "record-node"
	ActionForgetNode    = "forget-node"
	// The document's certificate and etcd backup settings into the cluster record: the
	// settings of a running cluster apply changes without touching a host.
	ActionRecordSettings = "record-settings"
	// Nothing: the step ends once its dependencies did. Many steps that wait for the same
	// many steps wait for one such step instead (the peers' routes and load balancer lists
	// after an apply's records: one list of 500 records, not 500 lists, each written with its
	// step whenever it changes).
	ActionBarrier = "barrier"
)

// Step defaults.
const (
	defaultAttempts  = 3
	tokenTTL         = 15 * time.Minute
	defaultDrainTime = 5 * time.Minute
)

// KubeconfigSignTimeout bounds signing a user certificate on a control plane (deckctl
// kubeconfig waits for it): reading the CA, maybe one kubectl call.
var KubeconfigSignTimeout = StepTimeout("kubeconfig_sign")

// StepTimeout is how long a task of kind may run as a step (taskkinds declares it).
func StepTimeout(kind string) time.Duration {
	k, _ := taskkinds.Get(kind)
	return k.StepTimeout
}

// peerRoutesTimeout bounds a routes step on a node outside the workflow's own: a node that
// is down must not hold a join up for long (the next join or reset updates it again).
const peerRoutesTimeout = 2 * time.Minute

// providerRolloutTimeout bounds the rollout of a pod network provider's manifest on the
// first control plane: its image was pulled by the images step before init.
const providerRolloutTimeout = 5 * time.Minute

// plan is what a workflow spec turns into against the current cluster.
type plan struct {
	steps       []*storagev1.StepRecord
	nodes       []string // held
	concurrency uint32
	changes     []string
	notes       []string
	names       map[string]bool
	// drivers is the cgroup driver each node's facts infer (kubeadmconfig.CgroupDriverFor).
	drivers map[string]string
	// addrs is what each node's facts say about its addresses (absent: no facts yet).
	addrs map[string]*hostAddrs
}

// settings is the host preparation and cluster spec every node gets.
type settings struct {
	cluster  *taskv1.ClusterSpec
	packages *taskv1.PackagesSpec
	runtime  *taskv1.RuntimeSpec
}

func (s settings) of(c *apiv1.Cluster) settings {
	return settings{cluster: c.GetSpec(), packages: c.GetPackages(), runtime: c.GetRuntime()}
}

// spec wraps a kind's message (a *taskv1.KubeadmJoinSpec and so on) in a TaskSpec.
func spec(kind proto.Message) *taskv1.TaskSpec {
	s, err := taskkinds.Wrap(kind)
	if err != nil {
		panic("workflows: " + err.Error())
	}
	return s
}

// KindOf names a task spec's kind as the agent's handlers do.
func KindOf(s *taskv1.TaskSpec) string { return taskkinds.Of(s) }

// add appends a step; name is NODE/WHAT.
func (p *plan) add(node, what, summary string, deps []string, t *taskv1.TaskSpec) *storagev1.StepRecord {
	name := node + "/" + what
	s := &storagev1.StepRecord{Name: name, Node: node, Lane: node, DependsOn: deps, Task: t, Summary: summary,
		State: storagev1.StepRecordState_STEP_RECORD_STATE_PENDING, MaxAttempts: defaultAttempts}
	if t != nil {
		s.Timeout = durationpb.New(StepTimeout(KindOf(t)))
	}
	p.steps = append(p.steps, s)
	return s
}

func (p *plan) hold(node string) {
	for _, n := range p.nodes {
		if n == node {
			return
		}
	}
	p.nodes = append(p.nodes, node)
}

// address is node's address in the cluster (see nodeAddress); field names where explicit
// came from. The plan notes where a chosen address came from.
func (p *plan) address(field, node, explicit string) (string, error) {
	addr, from, err := nodeAddress(field, node, explicit, p.addrs[node])
	if err != nil {
		return "", err
	}
	switch {
	case addr == "":
		p.notes = append(p.notes, fmt.Sprintf("%s: no address known (no facts yet, or no route to its controller found); kubeadm and the kubelet take the default route's interface's: give one with --address or spec.nodes[].address on a host with several networks", node))
	case from == addrRoute:
		p.notes = append(p.notes, fmt.Sprintf("%s: address %s, %s (give --address or spec.nodes[].address to choose another)", node, addr, from))
	}
	return addr, nil
}

// optionsSpec is a workflow's node options as the NodeSpec fields they set.
func optionsSpec(o *apiv1.NodeOptions) *taskv1.NodeSpec {
	return &taskv1.NodeSpec{Labels: o.GetLabels(), Taints: o.GetTaints(), NoTaints: o.GetNoTaints(), KubeletExtraArgs: o.GetKubeletExtraArgs()}
}

// nodeSpec is the NodeSpec of node name with address addr and settings (labels, taints,
// kubelet flags), checked as the agent will; field names where settings came from.
func nodeSpec(field, name, addr string, settings *taskv1.NodeSpec) (*taskv1.NodeSpec, error) {
	ns := &taskv1.NodeSpec{}
	if settings != nil {
		ns = proto.Clone(settings).(*taskv1.NodeSpec)
	}
	ns.Name, ns.AdvertiseAddress = name, addr
	if _, err := kubeadmconfig.ParseNode(ns); err != nil {
		var fe *kubeimages.FieldError
		if errors.As(err, &fe) {
			c := *fe
			c.Field = field + "." + strings.TrimPrefix(c.Field, "node.")
			err = &c
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ns, nil
}

// prepare adds preflight → packages → runtime → images for node, whose address in the
// cluster is addr; it returns the last step.
func (p *plan) prepare(node, addr string, role taskv1.NodeRole, s settings, deps []string) string {
	// The container runtime is installed by a later step of this workflow, and kubeadm's
	// own preflight checks its socket again before init or join.
	pf := &taskv1.PreflightSpec{Role: role, Fix: true, Ignore: []string{"CRI"}, NodeAddress: addr}
	if lb := lbOf(s.cluster); lb.Type == lbconf.VIP && runsLB(s.cluster, role) {
		pf.ExtraPorts = []uint32{uint32(lb.Port)} // clients reach the address on the control planes
		pf.AllowVrrp = true                       // keepalived's advertisements between them
	}
	prov := podnet.MustLookup(provider(s.cluster))
	upstream, pulled := networkImages(s.cluster)
	if reg := s.cluster.GetRegistry(); len(upstream) > 0 && len(reg.GetMirrors()) > 0 && slices.Equal(pulled, upstream) &&
		!slices.Contains(p.notes, mirrorNote(prov, upstream)) {
		p.notes = append(p.notes, mirrorNote(prov, upstream))
	}
	for _, port := range prov.Ports {
		pf.NetworkPorts = append(pf.NetworkPorts, port.Spec)
	}
	pf.NetworkPorts = append(pf.NetworkPorts, s.cluster.GetNetworkManifest().GetPorts()...)
	// The pods' traffic between nodes is forwarded to this node's pods: firewalld trusts it.
	for _, c := range strings.Split(s.cluster.GetPodSubnet(), ",") {
		if c = strings.TrimSpace(c); c != "" {
			pf.TrustedSources = append(pf.TrustedSources, c)
		}
	}
	pre := p.add(node, "preflight", "preflight checks and fixes", deps, spec(pf))
	pk := proto.Clone(s.packages).(*taskv1.PackagesSpec)
	pk.KubernetesVersion = s.cluster.GetKubernetesVersion()
	// A repository per minor: the cluster's, also after an upgrade moved it past the one
	// the cluster was created with.
	pk.BaseUrl = baseURLFor(pk.GetBaseUrl(), pk.GetKubernetesVersion())
	pkg := p.add(node, "packages", "kubelet, kubeadm and kubectl "+pk.GetKubernetesVersion(), []string{pre.Name}, spec(pk))
	rt := proto.Clone(s.runtime).(*taskv1.RuntimeSpec)
	rt.KubernetesVersion = s.cluster.GetKubernetesVersion()
	rt.Registry = s.cluster.GetRegistry()
	rt.CgroupDriver = s.cluster.GetCgroupDriver()
	run := p.add(node, "runtime", "containerd, runc and CNI plugins", []string{pkg.Name}, spec(rt))
	img := p.add(node, "images", "pull the control-plane images", []string{run.Name}, spec(&taskv1.ImagesSpec{
		Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: s.cluster.GetKubernetesVersion(), Registry: s.cluster.GetRegistry(),
		ExtraImages: pulled}))
	if role == taskv1.NodeRole_NODE_ROLE_WORKER {
		// A worker needs the kube-proxy and pause images only; kubeadm's list is what
		// `kubeadm config images pull` fetches, so workers pull it too (the runtime has the
		// sandbox image configured either way).
		img.Summary = "pull the cluster's images"
	}
	if len(upstream) > 0 {
		img.Summary += " and " + prov.Name + "'s"
	}
	return img.Name
}

// networkImages are the images of the cluster's pod network, as the provider or the
// user's manifest names them (upstream) and as the nodes pull them (through the cluster's
// image repository).
func networkImages(c *taskv1.ClusterSpec) (upstream, pulled []string) {
	prov := podnet.MustLookup(provider(c))
	upstream = append(prov.ImagesAt(prov.VersionOf(c.GetNetworkProviderVersion()), ""), c.GetNetworkManifest().GetImages()...)
	for _, img := range upstream {
		pulled = append(pulled, podnet.RewriteImage(img, c.GetRegistry().GetImageRepository()))
	}
	return upstream, pulled
}

// mirrorNote says that the mirrors do not serve a provider's images: they stand in for the
// image repository's registry, and the provider's images come from their own registries
// unless the cluster has an image repository of its own.
func mirrorNote(prov podnet.Provider, images []string) string {
	return fmt.Sprintf("%s's images (%s) are pulled from their own registry, not through the mirrors (which stand in for the image repository's registry): set imageRepository to a registry that has them under the same path to pull them from there",
		prov.Name, strings.Join(images, ", "))
}

// initSteps adds init of the node ns names (ns: its name, address and settings, from
// nodeSpec) after its preparation; it returns the record-cluster step.
func (p *plan) initSteps(ns *taskv1.NodeSpec, s settings) (string, error) {
	node, addr := ns.GetName(), ns.GetAdvertiseAddress()
	p.hold(node)
	s = p.withHostDriver(node, s)
	last := p.prepare(node, addr, taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, s, nil)
	if lb, err := p.loadBalancer(node, addr, taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, s, []string{last}); err != nil {
		return "", err
	} else if lb != "" {
		last = lb
	}
	in := p.add(node, "init", "kubeadm init", []string{last}, spec(&taskv1.KubeadmInitSpec{
		Cluster: s.cluster, Node: ns, UploadCerts: s.cluster.GetControlPlaneEndpoint() != ""}))
	in.MaxAttempts = 2
	// No join uses the token kubeadm init mints (each mints its own just in time): delete
	// it at once, also when the init failed after minting it. kubeadm gives it a short TTL
	// (kubeadmconfig.InitTokenTTL) should this fail.
	del := p.add(node, "token-delete", "delete the token kubeadm init minted", []string{in.Name}, spec(&taskv1.KubeadmTokenSpec{}))
	del.Always = true
	del.Inputs = []*storagev1.StepInputRecord{{Field: "delete_token_id", Step: in.Name, Output: "token"}}
	reg := p.registered(node, in.Name, false)
	var deps []string
	prov := podnet.MustLookup(provider(s.cluster))
	var ms *taskv1.ManifestSpec
	switch {
	case prov.FromDocument:
		// The user's manifest, read by the node from its location and checked there.
		nm := s.cluster.GetNetworkManifest()
		ms = &taskv1.ManifestSpec{Name: prov.ManifestName, Location: nm.GetLocation(), Sha256: nm.GetSha256(), Registry: s.cluster.GetRegistry(), Images: nm.GetImages(),
			Timeout: durationpb.New(providerRolloutTimeout)}
		if d := nm.GetRolloutTimeout(); d.AsDuration() > 0 {
			ms.Timeout = d
		}
	case prov.Manifest != nil:
		if v := s.cluster.GetNetworkProviderVersion(); v != prov.Version {
			// Only a new cluster is initialized: it gets this Deckhand's version.
			return "", fmt.Errorf("%w: network_provider_version: this Deckhand installs %s %s in a new cluster, not %q: leave it out", ErrInvalid, prov.Name, prov.Version, v)
		}
		// The node renders the provider's manifest (the task record keeps the preset, not
		// Calico's 250 KiB); rendered here too, so a pod subnet it cannot take fails the plan.
		preset := &taskv1.NetworkPreset{Provider: prov.Name, Version: prov.Version, PodSubnet: podnet.ClusterSubnet(s.cluster.GetPodSubnet())}
		if _, err := prov.Manifest(podnet.ManifestInput{PodSubnet: preset.PodSubnet, Version: preset.Version}); err != nil {
			return "", fmt.Errorf("%w: spec.networking.podSubnet: %v (spec.network.provider %s needs an IPv4 pod subnet; --pod-subnet on deckctl init)", ErrInvalid, err, prov.Name)
		}
		ms = &taskv1.ManifestSpec{Name: prov.ManifestName, Preset: preset, Registry: s.cluster.GetRegistry(), Images: prov.Images(prov.Version),
			Timeout: durationpb.New(providerRolloutTimeout)}
	}
	if ms != nil {
		// Applied once the API answers; its DaemonSet runs on every node as it registers
		// (host network, every taint tolerated), and each node's network (or ready) step
		// waits for it.
		man := p.add(node, "network-provider", "apply "+prov.Name+" to the cluster and wait for it to roll out", []string{in.Name}, spec(ms))
		man.MaxAttempts = 2
		deps = append(deps, man.Name)
	}
	net := p.network(node, s, reg, false, deps...)
	rec := p.add(node, "record", "record the cluster", []string{net, del.Name}, nil)
	rec.Action = ActionRecordCluster
	p.changes = append(p.changes, fmt.Sprintf("init %s: a new %s cluster with %s as its first control plane", node, s.cluster.GetKubernetesVersion(), node))
	return rec.Name, nil
}

// withHostDriver fills a new cluster's empty cgroup driver from the facts of node, its
// first control plane: kubeadm init stores the kubelet's driver for every node that joins,
// and each node's runtime step gets the cluster's, so the two agree everywhere. Without
// facts, the init and runtime tasks decide from that host the same way.
func (p *plan) withHostDriver(node string, s settings) settings {
	if s.cluster == nil || s.cluster.GetCgroupDriver() != "" || p.drivers[node] == "" {
		return s
	}
	s.cluster = proto.Clone(s.cluster).(*taskv1.ClusterSpec)
	s.cluster.CgroupDriver = p.drivers[node]
	p.notes = append(p.notes, fmt.Sprintf("cgroup driver %s, from %s's facts (the cluster spec leaves it empty): every node's kubelet and containerd use it", p.drivers[node], node))
	return s
}

// joinSteps adds the join of the node ns names (ns: its name, address and settings, from
// nodeSpec); after names steps the token step must wait for (the cluster's init, or the
// previous control-plane join). It returns the record step.
func (p *plan) joinSteps(ns *taskv1.NodeSpec, role taskv1.NodeRole, s settings, after []string) (string, error) {
	node, addr := ns.GetName(), ns.GetAdvertiseAddress()
	p.hold(node)
	cp := role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	last := p.prepare(node, addr, role, s, nil)
	// Its load balancer forwards to the control planes recorded when it runs: after those
	// this join waits for (an apply's init, the control plane joined before it).
	if lb, err := p.loadBalancer(node, addr, role, s, append([]string{last}, after...)); err != nil {
		return "", err
	} else if lb != "" {
		last = lb
	}
	tok := p.add(node, "token", "mint a join token on a control plane", append([]string{last}, after...), spec(&taskv1.KubeadmTokenSpec{
		Ttl: durationpb.New(tokenTTL), ControlPlane: cp}))
	tok.Node, tok.AnyControlPlane, tok.Ephemeral = "", true, true
	join := p.add(node, "join", "kubeadm join as "+roleName(role), []string{tok.Name}, spec(&taskv1.KubeadmJoinSpec{
		Cluster: s.cluster, Node: ns, Role: role}))
	join.Inputs = []*storagev1.StepInputRecord{{Field: "token", Step: tok.Name, Output: "token"}, {Field: "ca_cert_hash", Step: tok.Name, Output: "ca_cert_hash"},
		// Without a control-plane endpoint, discovery goes to the API server the token's
		// join command names.
		{Field: "api_server", Step: tok.Name, Output: "api_server"}}
	if cp {
		join.Inputs = append(join.Inputs, &storagev1.StepInputRecord{Field: "certificate_key", Step: tok.Name, Output: "certificate_key"})
	}
	join.MaxAttempts = 2
	del := p.add(node, "token-delete", "delete the join token", []string{join.Name}, spec(&taskv1.KubeadmTokenSpec{}))
	del.Node, del.NodeFrom, del.Always = "", tok.Name, true
	del.Inputs = []*storagev1.StepInputRecord{{Field: "delete_token_id", Step: tok.Name, Output: "token"}}
	reg := p.registered(node, join.Name, true)
	p.step(reg).NodeFrom = tok.Name
	net := p.network(node, s, reg, true)
	ready := p.add(node, "ready", "wait until the node is Ready", []string{net}, spec(&taskv1.NodeReadySpec{NodeName: node, Wait: taskv1.NodeWait_NODE_WAIT_READY}))
	ready.Node, ready.NodeFrom = "", tok.Name
	rec := p.add(node, "record", "record the node in the cluster", []string{ready.Name, del.Name}, nil)
	rec.Action = ActionRecordNode
	p.changes = append(p.changes, fmt.Sprintf("join %s as %s", node, roleName(role)))
	return rec.Name, nil
}

// registered adds the wait until node's Node object exists with a podCIDR (assigned by
// kube-controller-manager), on the node itself after an init, else (remote) on a control
// plane the caller names with NodeFrom. It returns the step's name; its outputs are the
// node's pod_cidr and address.
func (p *plan) registered(node, after string, remote bool) string {
	reg := p.add(node, "registered", "wait until the node is registered with a podCIDR", []string{after}, spec(&taskv1.NodeReadySpec{
		NodeName: node, Wait: taskv1.NodeWait_NODE_WAIT_REGISTERED}))
	if remote {
		reg.Node = ""
	}
	return reg.Name
}

// provider is the cluster's pod network provider ("" in a record from before it existed).
func provider(c *taskv1.ClusterSpec) string {
	if c.GetNetworkProvider() == "" {
		return podnet.Providers[0]
	}
	return c.GetNetworkProvider()
}

// networkSpec is the part of a network task the plan fixes: the provider and the cluster's
// pod subnet (the node's pod CIDR and routes are resolved when the step is dispatched).
func networkSpec(c *taskv1.ClusterSpec) *taskv1.TaskSpec {
	return spec(&taskv1.NetworkSpec{Provider: provider(c), ClusterPodSubnet: podnet.ClusterSubnet(c.GetPodSubnet())})
}

// network adds the pod network of node after its registered step (and deps): the CNI
// configuration for its podCIDR and, when Deckhand routes (bridge), routes to the other
// nodes' podCIDRs; under a provider whose pods configure the node themselves (Calico,
// Cilium, a user's manifest), a wait until the node is Ready (on the first control plane;
// a joining node has its ready step). It returns the last step's name.
func (p *plan) network(node string, s settings, reg string, joining bool, deps ...string) string {
	prov := podnet.MustLookup(provider(s.cluster))
	if prov.OwnCNI {
		if joining {
			return reg // the provider's pods configure the node; the join's ready step waits for it
		}
		who := prov.Name
		if prov.FromDocument {
			who = "the manifest's"
		}
		st := p.add(node, "network", "pod network ("+who+"): wait until it makes the node Ready", append([]string{reg}, deps...),
			spec(&taskv1.NodeReadySpec{NodeName: node, Wait: taskv1.NodeWait_NODE_WAIT_READY}))
		return st.Name
	}
	summary := "pod network (" + prov.Name + "): CNI configuration and routes to the other nodes' pods"
	if !prov.HostRoutes {
		summary = "pod network (" + prov.Name + "): CNI configuration once " + prov.Name + " runs on the node"
	}
	net := p.add(node, "network", summary, append([]string{reg}, deps...), networkSpec(s.cluster))
	net.Inputs = []*storagev1.StepInputRecord{{Field: "pod_cidr", Step: reg, Output: "pod_cidr"}}
	if prov.HostRoutes {
		net.Inputs = append(net.Inputs, &storagev1.StepInputRecord{Field: "routes"})
	}
	return net.Name
}

// peerRoutes adds, after deps, a routes step on each of nodes: a network task whose pod
// CIDR and route list are resolved when its task is created (see renderSpec; the list is
// filled as the task is sent when the cluster record holds it: see RouteFiller), so a
// node's routes follow the cluster as nodes join and leave. It runs on nodes this workflow
// does not hold: it takes no lock, and a routes update on a node busy in another workflow
// is fine (the agent serializes network tasks and keeps the newest generation's list). A
// failed routes step does not fail the workflow: the node joined or left all the same,
// and the next join or reset updates that node again.
func (p *plan) peerRoutes(nodes []string, s settings, deps []string) {
	if !podnet.MustLookup(provider(s.cluster)).HostRoutes || len(nodes) == 0 {
		return // the provider routes between nodes itself
	}
	deps = p.allEnded(deps)
	for _, n := range nodes {
		st := p.add(n, "routes", "update the routes to the other nodes' pods", deps, networkSpec(s.cluster))
		st.Inputs = []*storagev1.StepInputRecord{{Field: "pod_cidr"}, {Field: "routes"}}
		// No lane: the routes steps are not part of the node's own join (the concurrency
		// of an apply bounds joins; a node's lane would be held open until every join
		// ended, and block the joins that the routes steps wait for).
		st.Lane = ""
		// Finally: once the joins it follows ended, also when one of them failed, so the
		// nodes that did join reach each other's pods.
		st.ContinueOnFailure, st.MaxAttempts, st.Finally = true, 2, true
		st.Timeout = durationpb.New(peerRoutesTimeout)
	}
}

// allEnded returns what a step that waits for every one of an apply's records (ended
// in any way, as a finally step waits) depends on: one barrier step when there are several,
// added once however many steps wait for it.
func (p *plan) allEnded(records []string) []string {
	if len(records) < 2 {
		return records
	}
	const name = "all/recorded"
	if p.step(name) == nil {
		b := p.add("all", "recorded", "wait until every node of the apply is recorded (or failed)", records, nil)
		b.Name, b.Node, b.Lane, b.Action = name, "", "", ActionBarrier
		b.Finally, b.ContinueOnFailure = true, true
	}
	return []string{name}
}

func (p *plan) step(name string) *storagev1.StepRecord {
	for _, s := range p.steps {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// resetSteps adds the removal and reset of node.
func (p *plan) resetSteps(node, address string, role taskv1.NodeRole, others bool, drainTimeout time.Duration, force bool) {
	p.hold(node)
	// Cordon and drain through another control plane, then kubeadm reset on the node, and
	// only then delete the Node object. The order matters for a control plane: kubeadm
	// reset's remove-etcd-member phase finds the node's etcd member through the cluster (its
	// etcd pod on that Node); with the Node deleted first it only wipes /var/lib/etcd and the
	// member stays, so resetting two of three control planes would lose quorum.
	var deps []string
	var dr *storagev1.StepRecord
	if others {
		dr = p.add(node, "drain", "cordon and drain", nil, spec(&taskv1.DrainSpec{NodeName: node, Timeout: durationpb.New(drainTimeout), Force: force}))
		dr.Node, dr.AnyControlPlane, dr.ContinueOnFailure, dr.MaxAttempts = "", true, force, 1
		dr.Timeout = durationpb.New(drainTimeout + time.Minute)
		deps = []string{dr.Name}
	}
	rs := p.add(node, "reset", "kubeadm reset and clean-up", deps, spec(&taskv1.KubeadmResetSpec{
		Ipvs: true, RemoveEtcdMember: role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE}))
	last := rs.Name
	if others && role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
		// Verify, through a remaining control plane's etcd, that the node's stacked etcd
		// member is gone (kubeadm reset removes it; one it could not remove is removed here),
		// before the workflow says done: a member left behind counts against the quorum.
		// It runs also when the reset failed after kubeadm reset (leftovers of someone
		// else's): a member kubeadm could not remove must not keep counting meanwhile.
		ec := p.add(node, "etcd-check", "check its etcd member is gone (remove it if kubeadm reset left it)", []string{rs.Name}, spec(&taskv1.EtcdMembersSpec{Absent: node, AbsentAddress: address}))
		ec.Node, ec.NodeFrom, ec.AnyControlPlane, ec.Always = "", dr.Name, true, true
		last = ec.Name
	}
	if others {
		del := p.add(node, "delete", "delete the Node object", []string{last}, spec(&taskv1.DeleteNodeSpec{NodeName: node}))
		// Where the drain ran, or on another Ready control plane once that one is down.
		del.Node, del.NodeFrom, del.AnyControlPlane = "", dr.Name, true
		last = del.Name
	}
	f := p.add(node, "forget", "remove the node from the cluster record", []string{last}, nil)
	f.Action = ActionForgetNode
	what := "drain, kubeadm reset, delete the Node"
	if others && role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
		what = "drain, kubeadm reset, check its etcd member is gone, delete the Node"
	}
	p.changes = append(p.changes, fmt.Sprintf("reset %s (%s): %s", node, roleName(role), what))
}

func roleName(r taskv1.NodeRole) string {
	if r == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
		return "control-plane"
	}
	return "worker"
}

// build turns a spec into steps against the recorded cluster. enrolled says which nodes
// exist in Deckhand's inventory.
func build(ws *apiv1.WorkflowSpec, cl *apiv1.Cluster, enrolled map[string]bool) (*plan, error) {
	return buildWith(ws, cl, enrolled, nil, nil, nil)
}

// buildWith is build with the cgroup driver each node's facts infer, which a new cluster
// whose spec leaves it empty takes from its first control plane, and the addresses they
// list, from which each node's address in the cluster is chosen.
func buildWith(ws *apiv1.WorkflowSpec, cl *apiv1.Cluster, enrolled map[string]bool, drivers map[string]string, addrs map[string]*hostAddrs, inv upgradeInventory) (*plan, error) {
	p := &plan{drivers: drivers, addrs: addrs}
	needNode := func(field, name string) error {
		if name == "" {
			return fmt.Errorf("%w: %s: give a node name", ErrInvalid, field)
		}
		if !enrolled[name] {
			return fmt.Errorf("%w: %s: node %q is not enrolled: start deckhand-agent on it with a token (deckctl token create), then check deckctl nodes", ErrInvalid, field, name)
		}
		return nil
	}
	switch k := ws.GetKind().(type) {
	case *apiv1.WorkflowSpec_Init:
		in := k.Init
		if err := needNode("init.node", in.GetNode()); err != nil {
			return nil, err
		}
		if cl != nil {
			return nil, fmt.Errorf("%w: a cluster already exists (first control plane %s): join nodes to it, or reset every node first", ErrWrongState, firstControlPlane(cl))
		}
		c := withNetworkDefaults(in.GetCluster())
		parsed, err := kubeadmconfig.ParseCluster(c)
		if err != nil {
			return nil, fmt.Errorf("%w: init.cluster.%v", ErrInvalid, err)
		}
		// A load balancer's address is the endpoint (kubeadm's, the cluster record's).
		c.ControlPlaneEndpoint = parsed.ControlPlaneEndpoint
		addr, err := p.address("init.address", in.GetNode(), in.GetAddress())
		if err != nil {
			return nil, err
		}
		s := settings{cluster: c, packages: in.GetPackages(), runtime: in.GetRuntime()}
		if s.packages == nil {
			s.packages = &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY, Hold: true}
		}
		if s.runtime == nil {
			s.runtime = &taskv1.RuntimeSpec{Source: taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE}
		}
		ns, err := nodeSpec("init.options", in.GetNode(), addr, optionsSpec(in.GetOptions()))
		if err != nil {
			return nil, err
		}
		if _, err := p.initSteps(ns, s); err != nil {
			return nil, err
		}
	case *apiv1.WorkflowSpec_Join:
		j := k.Join
		if err := needNode("join.node", j.GetNode()); err != nil {
			return nil, err
		}
		if cl == nil {
			return nil, fmt.Errorf("%w: no cluster yet: create one with deckctl init NODE or deckctl apply -f cluster.yaml", ErrWrongState)
		}
		if n := clusterNode(cl, j.GetNode()); n != nil {
			return nil, fmt.Errorf("%w: %s is already in the cluster as %s: reset it first (deckctl reset %s) to join it again", ErrWrongState, j.GetNode(), roleName(n.GetRole()), j.GetNode())
		}
		role := taskv1.NodeRole_NODE_ROLE_WORKER
		if j.GetControlPlane() {
			role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
			if cl.GetSpec().GetControlPlaneEndpoint() == "" {
				return nil, fmt.Errorf("%w: join.control_plane: the cluster has no control-plane endpoint, so no second control plane can join (kubeadm needs a shared endpoint); join it as a worker", ErrWrongState)
			}
		}
		addr, err := p.address("join.address", j.GetNode(), j.GetAddress())
		if err != nil {
			return nil, err
		}
		s := settings{}.of(cl)
		ns, err := nodeSpec("join.options", j.GetNode(), addr, optionsSpec(j.GetOptions()))
		if err != nil {
			return nil, err
		}
		rec, err := p.joinSteps(ns, role, s, nil)
		if err != nil {
			return nil, err
		}
		p.peerRoutes(append(names(cl), j.GetNode()), s, []string{rec})
		if role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			p.peerLB(lbNodes(cl, s, nil, j.GetNode()), s, []string{rec})
		}
	case *apiv1.WorkflowSpec_Reset_:
		r := k.Reset_
		if r.GetNode() == "" {
			return nil, fmt.Errorf("%w: reset.node: give a node name", ErrInvalid)
		}
		dt := r.GetDrainTimeout().AsDuration()
		if dt == 0 {
			dt = defaultDrainTime
		}
		if dt < 0 || dt > 24*time.Hour {
			return nil, fmt.Errorf("%w: reset.drain_timeout: %v is out of range; give 1s..24h", ErrInvalid, dt)
		}
		n := clusterNode(cl, r.GetNode())
		role := taskv1.NodeRole_NODE_ROLE_WORKER
		if n != nil {
			role = n.GetRole()
		} else if err := needNode("reset.node", r.GetNode()); err != nil {
			return nil, err
		}
		others := false
		for _, o := range cl.GetNodes() {
			if o.GetName() != r.GetNode() && o.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
				others = true
			}
		}
		if n != nil && !others && len(cl.GetNodes()) > 1 {
			return nil, fmt.Errorf("%w: %s is the cluster's only control plane and %d other node(s) depend on it: reset them first", ErrWrongState, r.GetNode(), len(cl.GetNodes())-1)
		}
		if !enrolled[r.GetNode()] {
			return nil, fmt.Errorf("%w: reset.node: node %q is not enrolled, so Deckhand cannot reset it; run kubeadm reset on it by hand", ErrInvalid, r.GetNode())
		}
		p.resetSteps(r.GetNode(), n.GetAddress(), role, n != nil && others, dt, r.GetForce())
		if n == nil {
			// Not recorded: its join failed, maybe after its load balancer started (a control
			// plane's keepalived would go on taking the VIP), or, with no cluster at all, its
			// init did. Whatever its role was, remove it: the agent leaves a node where
			// Deckhand configured none alone. Without a cluster its settings are not recorded;
			// removing needs none.
			s := settings{}.of(cl)
			if cl == nil {
				s.cluster = &taskv1.ClusterSpec{LoadBalancer: &taskv1.LoadBalancerSettings{Type: lbconf.Local}}
			}
			p.removeLB(r.GetNode(), taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, s, r.GetNode()+"/reset")
		}
		if n != nil {
			s := settings{}.of(cl)
			p.removeLB(r.GetNode(), role, s, r.GetNode()+"/reset")
			if role == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
				p.peerLB(lbNodes(cl, s, nil, r.GetNode()), s, []string{r.GetNode() + "/forget"})
			}
			var rest []string
			for _, o := range names(cl) {
				if o != r.GetNode() {
					rest = append(rest, o)
				}
			}
			p.peerRoutes(rest, settings{}.of(cl), []string{r.GetNode() + "/forget"})
		}
	case *apiv1.WorkflowSpec_Apply:
		doc, err := clusterspec.Parse(k.Apply.GetClusterYaml())
		if err != nil {
			return nil, err
		}
		if err := p.apply(doc, cl, enrolled); err != nil {
			return nil, err
		}
	case *apiv1.WorkflowSpec_Upgrade:
		if cl == nil {
			return nil, fmt.Errorf("%w: no cluster yet: create one with deckctl init NODE or deckctl apply -f cluster.yaml", ErrWrongState)
		}
		u := k.Upgrade
		st := upgradeState{Cluster: cl.GetSpec().GetKubernetesVersion(), Target: u.GetKubernetesVersion(), MaxUnavailable: u.GetMaxUnavailable(), Force: u.GetForce()}
		for _, n := range cl.GetNodes() {
			un := inv[n.GetName()]
			un.Name, un.ControlPlane = n.GetName(), n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
			un.RecordedKubelet, un.RecordedControlPlane = n.GetKubeletVersion(), n.GetControlPlaneVersion()
			st.Nodes = append(st.Nodes, un)
		}
		d, err := decideUpgrade(st)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if err := upgradeChecksums(cl.GetPackages(), u.GetSha256(), len(d.Nodes()) > 0); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		p.upgradeSteps(u, cl, d)
	case *apiv1.WorkflowSpec_CertsRenew:
		if cl == nil {
			return nil, fmt.Errorf("%w: no cluster yet: create one with deckctl init NODE or deckctl apply -f cluster.yaml", ErrWrongState)
		}
		cps := controlPlanes(cl)
		nodes, err := decideCertsRenew(cps, k.CertsRenew.GetNodes())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		p.certsRenewSteps(nodes, cps)
	default:
		return nil, fmt.Errorf("%w: spec: give one of init, join, reset, apply, upgrade, certs_renew or etcd_restore", ErrInvalid)
	}
	return p, nil
}

// names lists the recorded nodes of cl.
func names(cl *apiv1.Cluster) []string {
	var out []string
	for _, n := range cl.GetNodes() {
		out = append(out, n.GetName())
	}
	return out
}

// withNetworkDefaults fills a new cluster's pod network: the bridge provider, and a pod
// subnet (it needs one; kubeadm has no default).
func withNetworkDefaults(c *taskv1.ClusterSpec) *taskv1.ClusterSpec {
	if c == nil {
		return nil
	}
	c = proto.Clone(c).(*taskv1.ClusterSpec)
	c.NetworkProvider = provider(c)
	if c.GetNetworkProviderVersion() == "" {
		// Recorded with the cluster: later joins pull this version's images.
		c.NetworkProviderVersion = podnet.MustLookup(c.NetworkProvider).Version
	}
	if c.GetPodSubnet() == "" {
		c.PodSubnet = podnet.DefaultPodSubnet
	}
	return c
}

func firstControlPlane(cl *apiv1.Cluster) string {
	for _, n := range cl.GetNodes() {
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			return n.GetName()
		}
	}
	return "none"
}

// apply adds what it takes to go from cl to doc: an init when there is no cluster, then a
// join per missing node (control planes one after another, workers in parallel up to the
// concurrency). It never removes nodes; it notes the ones the document does not list.
func (p *plan) apply(doc *clusterspec.Cluster, cl *apiv1.Cluster, enrolled map[string]bool) error {
	p.concurrency = uint32(doc.Concurrency)
	for i, n := range doc.Nodes {
		if !enrolled[n.Name] && clusterNode(cl, n.Name) == nil {
			return fmt.Errorf("%w: spec.nodes[%d].name: node %q is not enrolled: start deckhand-agent on it with a token (deckctl token create), then check deckctl nodes", ErrInvalid, i, n.Name)
		}
	}
	specs := map[string]*taskv1.NodeSpec{}
	for i, n := range doc.Nodes {
		if clusterNode(cl, n.Name) != nil {
			continue
		}
		field := fmt.Sprintf("spec.nodes[%d]", i)
		a, err := p.address(field+".address", n.Name, n.Address)
		if err != nil {
			return err
		}
		if specs[n.Name], err = nodeSpec(field, n.Name, a, n.Settings); err != nil {
			return err
		}
	}
	s := settings{cluster: withNetworkDefaults(doc.Spec), packages: doc.Packages, runtime: doc.Runtime}
	var after []string // what a control-plane join waits for
	var workerAfter []string
	var records []string // every node this apply records
	cpJoins := 0         // control planes joined (not the init's)
	if cl == nil {
		first := doc.ControlPlanes()[0]
		s = p.withHostDriver(first, s)
		rec, err := p.initSteps(specs[first], s)
		if err != nil {
			return err
		}
		after, workerAfter = []string{rec}, []string{rec}
		records = append(records, rec)
	} else {
		if err := sameSettings(doc, cl); err != nil {
			return err
		}
		s = settings{}.of(cl)
		if d := settingsChanges(cl.GetSpec(), doc.Spec); len(d) > 0 {
			rs := p.add(firstControlPlane(cl), "record-settings", "record the cluster's new settings: "+strings.Join(d, "; "), nil, nil)
			rs.Action = ActionRecordSettings
			p.changes = append(p.changes, d...)
		}
		for i, n := range doc.Nodes {
			if have := clusterNode(cl, n.Name); have != nil && have.GetRole() != n.Role {
				return fmt.Errorf("%w: spec.nodes[%d].role: %s is in the cluster as %s; reset it first to change its role", ErrWrongState, i, n.Name, roleName(have.GetRole()))
			}
		}
	}
	for _, n := range doc.Nodes {
		if n.Role != taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE || clusterNode(cl, n.Name) != nil || p.holds(n.Name) {
			continue
		}
		rec, err := p.joinSteps(specs[n.Name], n.Role, s, after)
		if err != nil {
			return err
		}
		after = []string{rec}
		records = append(records, rec)
		cpJoins++
	}
	for _, n := range doc.Nodes {
		if n.Role != taskv1.NodeRole_NODE_ROLE_WORKER || clusterNode(cl, n.Name) != nil {
			continue
		}
		rec, err := p.joinSteps(specs[n.Name], n.Role, s, workerAfter)
		if err != nil {
			return err
		}
		records = append(records, rec)
	}
	// Once every node is recorded, every node running a part of the load balancer forwards
	// to every control plane, those that joined after it too.
	if cpJoins > 0 {
		joined := map[string]*apiv1.ClusterNode{}
		for _, n := range doc.Nodes {
			if specs[n.Name] != nil {
				joined[n.Name] = &apiv1.ClusterNode{Role: n.Role, Address: specs[n.Name].GetAdvertiseAddress()}
			}
		}
		p.peerLB(lbNodes(cl, s, joined, ""), s, records)
	}
	// Nodes joining in parallel each get the routes to the nodes recorded when their own
	// network step runs; once every node of this apply is recorded, every node of the
	// cluster gets its routes again, from the record as it is then (see peerRoutes).
	all := names(cl)
	for _, rec := range records {
		all = append(all, strings.TrimSuffix(rec, "/record"))
	}
	if len(records) > 0 && len(all) > 1 {
		p.peerRoutes(all, s, records)
	}
	listed := map[string]bool{}
	for _, n := range doc.Nodes {
		listed[n.Name] = true
	}
	for _, n := range cl.GetNodes() {
		if !listed[n.GetName()] {
			p.notes = append(p.notes, fmt.Sprintf("%s is in the cluster (%s) but not in the document; apply leaves it; deckctl reset %s removes it", n.GetName(), roleName(n.GetRole()), n.GetName()))
		}
	}
	return nil
}

func (p *plan) holds(node string) bool {
	for _, n := range p.nodes {
		if n == node {
			return true
		}
	}
	return false
}

// settingsChanges lists how the document's certificate and etcd backup settings differ
// from the cluster record's, as a person reads them; these change on a running cluster.
func settingsChanges(have, want *taskv1.ClusterSpec) []string {
	var out []string
	if !proto.Equal(have.GetCertificates(), want.GetCertificates()) {
		out = append(out, "spec.certificates: "+certSettings(have.GetCertificates())+" → "+certSettings(want.GetCertificates()))
	}
	if !proto.Equal(have.GetEtcd(), want.GetEtcd()) {
		out = append(out, "spec.etcd.backup: "+backupSettings(have.GetEtcd().GetBackup())+" → "+backupSettings(want.GetEtcd().GetBackup()))
	}
	return out
}

func certSettings(c *taskv1.CertificateSettings) string {
	if c.GetManual() {
		return "renewed only by deckctl certs renew"
	}
	return "renewed " + kubeadmconfig.RenewBefore(c).String() + " before expiry"
}

func backupSettings(b *taskv1.EtcdBackup) string {
	if b.GetInterval() == nil {
		return "no scheduled snapshots"
	}
	return fmt.Sprintf("a snapshot every %v, %d kept per control plane", b.GetInterval().AsDuration(), kubeadmconfig.BackupKeep(b))
}

// sameSettings refuses a document whose cluster-wide settings differ from the running
// cluster's: apply adds nodes, it does not upgrade or reconfigure.
func sameSettings(doc *clusterspec.Cluster, cl *apiv1.Cluster) error {
	have, want := cl.GetSpec(), doc.Spec
	diff := func(field, h, w string) error {
		if h == w {
			return nil
		}
		return fmt.Errorf("%w: %s: the document says %q, the cluster has %q; apply adds and joins nodes but does not change a running cluster's settings (upgrades are not supported yet): put back %q", ErrWrongState, field, w, h, h)
	}
	for _, err := range []error{
		diff("spec.kubernetesVersion", have.GetKubernetesVersion(), want.GetKubernetesVersion()),
		diff("spec.controlPlaneEndpoint", have.GetControlPlaneEndpoint(), want.GetControlPlaneEndpoint()),
		diff("spec.networking.podSubnet", have.GetPodSubnet(), want.GetPodSubnet()),
		diff("spec.networking.serviceSubnet", have.GetServiceSubnet(), want.GetServiceSubnet()),
		diff("spec.imageRepository", have.GetRegistry().GetImageRepository(), want.GetRegistry().GetImageRepository()),
		diff("spec.kubeProxy.mode", have.GetKubeProxy().GetMode(), want.GetKubeProxy().GetMode()),
		diff("spec.kubeProxy.conntrackMaxPerCore", conntrackMax(have.GetKubeProxy()), conntrackMax(want.GetKubeProxy())),
		diff("spec.network.provider", provider(have), provider(want)),
		diff("spec.network.manifest.location", have.GetNetworkManifest().GetLocation(), want.GetNetworkManifest().GetLocation()),
		diff("spec.network.manifest.sha256", have.GetNetworkManifest().GetSha256(), want.GetNetworkManifest().GetSha256()),
		diff("spec.network.manifest.images", strings.Join(have.GetNetworkManifest().GetImages(), ","), strings.Join(want.GetNetworkManifest().GetImages(), ",")),
		diff("spec.network.manifest.ports", strings.Join(have.GetNetworkManifest().GetPorts(), ","), strings.Join(want.GetNetworkManifest().GetPorts(), ",")),
		diff("spec.network.manifest.rolloutTimeout", have.GetNetworkManifest().GetRolloutTimeout().AsDuration().String(), want.GetNetworkManifest().GetRolloutTimeout().AsDuration().String()),
		diff("spec.apiServer.certSANs", strings.Join(have.GetApiServerCertSans(), ","), strings.Join(want.GetApiServerCertSans(), ",")),
		diff("spec.kubelet.extraArgs", flagList(have.GetKubeletExtraArgs()), flagList(want.GetKubeletExtraArgs())),
		diff("spec.patches", patchList(have.GetPatches()), patchList(want.GetPatches())),
		diff("spec.loadBalancer", lbString(have.GetLoadBalancer()), lbString(want.GetLoadBalancer())),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// flagList writes kubelet flags as the document's settings compare: sorted name=value.
func flagList(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// patchList writes kubeadm patches as the document's settings compare.
// lbString is a load balancer's settings as a person reads them, defaults filled.
func lbString(c *taskv1.LoadBalancerSettings) string {
	s := lbOf(&taskv1.ClusterSpec{LoadBalancer: c})
	if s.Type != lbconf.VIP {
		return s.Type + " " + s.Endpoint()
	}
	return fmt.Sprintf("vip %s interface %q virtualRouterId %d", s.Endpoint(), s.Interface, s.RouterID)
}

func patchList(ps []*taskv1.KubeadmPatch) string {
	var out []string
	for _, p := range ps {
		t := p.GetType()
		if t == "" {
			t = kubeadmconfig.PatchTypes[0]
		}
		out = append(out, fmt.Sprintf("%s+%s: %s", p.GetTarget(), t, strings.TrimSpace(p.GetPatch())))
	}
	return strings.Join(out, "; ")
}

// conntrackMax is kube-proxy's conntrack.maxPerCore as the document writes it: "" when
// it is absent (kube-proxy's default).
func conntrackMax(k *taskv1.KubeProxySettings) string {
	if k == nil || k.ConntrackMaxPerCore == nil {
		return ""
	}
	return strconv.Itoa(int(k.GetConntrackMaxPerCore()))
}

// netNode is a node as the pod network sees it; cidr and addr are podCIDR and address
// parsed, once a view (the zero value when the text is not a canonical prefix or address;
// AppendPacked refuses those and IPv6 ones, which only the route list carries).
type netNode struct {
	name, podCIDR, address string
	cidr                   netip.Prefix
	addr                   netip.Addr
}

// routedFrom says whether node has a route to n: n is another node with a podCIDR and an
// address (a node recorded before Deckhand knew them has neither).
func (n netNode) routedFrom(node string) bool {
	return n.name != node && n.podCIDR != "" && n.address != ""
}

func newNetNode(name, podCIDR, address string) netNode {
	n := netNode{name: name, podCIDR: podCIDR, address: address}
	if p, err := netip.ParsePrefix(podCIDR); err == nil && p.String() == podCIDR {
		n.cidr = p
	}
	if a, err := netip.ParseAddr(address); err == nil && a.String() == address {
		n.addr = a
	}
	return n
}

// networkView is every node the pod network routes to: the recorded nodes, and the nodes
// of this workflow registered so far (their registered step's outputs), which joined but
// are not recorded yet. Sorted by name.
func networkView(cl *apiv1.Cluster, steps []*storagev1.StepRecord) []netNode {
	by := map[string]netNode{}
	for _, n := range cl.GetNodes() {
		by[n.GetName()] = newNetNode(n.GetName(), n.GetPodCidr(), n.GetAddress())
	}
	for _, s := range steps {
		node, what, _ := strings.Cut(s.GetName(), "/")
		if what != "registered" || s.GetState() != storagev1.StepRecordState_STEP_RECORD_STATE_SUCCEEDED {
			continue
		}
		if o := s.GetOutputs(); o["pod_cidr"] != "" && o["address"] != "" {
			by[node] = newNetNode(node, o["pod_cidr"], o["address"])
		}
	}
	out := make([]netNode, 0, len(by))
	for _, n := range by {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b netNode) int { return strings.Compare(a.name, b.name) })
	return out
}

// packedRoutesFor is routesFor's list packed (NetworkSpec.packed_routes); ok is false when
// a route cannot be packed (a CIDR or an address that is not IPv4 in its canonical text):
// the list then carries it, for the agent to refuse with the field named.
func packedRoutesFor(view []netNode, node string) (_ []byte, ok bool) {
	b := make([]byte, 0, len(view)*podnet.PackedRouteSize)
	for _, n := range view {
		if n.routedFrom(node) {
			if b, ok = podnet.AppendPacked(b, n.cidr, n.addr); !ok {
				return nil, false
			}
		}
	}
	return b, true
}

// setRoutes sets n's route list for node from view: packed when packed is true (the agent
// reads packed lists) and every route packs, else listed.
func setRoutes(n *taskv1.NetworkSpec, view []netNode, node string, packed bool) {
	if packed {
		if b, ok := packedRoutesFor(view, node); ok {
			n.PackedRoutes = b
			return
		}
	}
	n.Routes = routesFor(view, node)
}

// routesFor is the route list of node: every other node of the view that has a podCIDR
// and an address (a node recorded before Deckhand knew them has neither).
func routesFor(view []netNode, node string) []*taskv1.NetworkRoute {
	out := []*taskv1.NetworkRoute{}
	for _, n := range view {
		if n.routedFrom(node) {
			out = append(out, &taskv1.NetworkRoute{Cidr: n.podCIDR, Via: n.address})
		}
	}
	return out
}
