package workflows

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/kubeimages"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// The rules of an upgrade, each named in its refusal (UpgradeRefusal.Rule).
const (
	// RuleVersion: the target is a release Deckhand supports.
	RuleVersion = "supported-version"
	// RuleNoDowngrade: never to an older release than the cluster's.
	RuleNoDowngrade = "no-downgrade"
	// RuleOneMinor: at most one minor release past the cluster's (kubeadm's own rule).
	RuleOneMinor = "one-minor-at-a-time"
	// RuleKubeletNotNewer: no kubelet newer than the target (kubelets never run ahead of
	// the API server).
	RuleKubeletNotNewer = "kubelet-not-newer"
	// RuleKubeletSkew: no kubelet more than three minors behind the target (the skew the
	// API server of the target accepts).
	RuleKubeletSkew = "kubelet-skew"
	// RuleConnected: every node's agent is connected, or nothing can stage or upgrade it
	// (--force skips the nodes that are not).
	RuleConnected = "nodes-connected"
	// RuleNotHeld: no node is held by another workflow.
	RuleNotHeld = "node-held"
	// RuleMaxUnavailable: --max-unavailable is N or P%.
	RuleMaxUnavailable = "max-unavailable"
	// RuleChecksums: a cluster whose binaries are pinned by SHA-256 gets the release's pins
	// with the upgrade.
	RuleChecksums = "pinned-checksums"
	// RuleAgentsCurrent: every node to upgrade runs the controllers' agent version (an
	// older agent does not know an upgrade's steps: it would install where it should only
	// download, drain where it should uncordon).
	RuleAgentsCurrent = "agents-current"
)

// UpgradeRefusal is an upgrade the rules refuse: the rule and why.
type UpgradeRefusal struct {
	Rule string
	Msg  string
}

func (e *UpgradeRefusal) Error() string { return "upgrade refused by rule " + e.Rule + ": " + e.Msg }

// upgradeNode is what the rules know of one node of the cluster record.
type upgradeNode struct {
	Name         string
	ControlPlane bool
	// Kubelet is the installed kubelet's version (facts; "" unknown).
	Kubelet string
	// ControlPlaneVersion is the version of the control plane's static pods (facts: the
	// kube-apiserver manifest's image tag; "" unknown or a worker).
	ControlPlaneVersion string
	Connected           bool
	// HeldBy is the workflow holding the node ("" none).
	HeldBy string
	// RecordedKubelet and RecordedControlPlane are the versions the cluster record holds
	// for the node: written once the API server reported it Ready on its new kubelet, so
	// they count as evidence too (facts are written at most every few seconds, and may
	// still show the version before).
	RecordedKubelet, RecordedControlPlane string
	// AgentCurrent: its agent is the controllers' version; AgentVersion what it reported.
	AgentCurrent bool
	AgentVersion string
}

// evidence is the newer of what the facts and the record say (the facts when the record
// holds no version).
func evidence(fact, recorded string) string {
	if _, ok := kubeimages.ParseRelease(recorded); !ok {
		return fact
	}
	if _, ok := kubeimages.ParseRelease(fact); ok && compareVersions(fact, recorded) >= 0 {
		return fact
	}
	return recorded
}

// upgradeState is what an upgrade is decided from.
type upgradeState struct {
	// Cluster is the cluster record's Kubernetes version; Target the one asked for.
	Cluster, Target string
	// Nodes in the record's order: the first control plane first.
	Nodes []upgradeNode
	// MaxUnavailable is how many workers are upgraded at once: "N", "P%" of the workers
	// (at least one), or "" for 1.
	MaxUnavailable string
	// Force upgrades without the nodes whose agents are not connected.
	Force bool
}

// upgradeDecision is an upgrade's order.
type upgradeDecision struct {
	Target string
	// Apply is the control plane `kubeadm upgrade apply` runs on ("": it ran, a control
	// plane's static pods are at the target already).
	Apply string
	// ControlPlanes are upgraded one at a time in this order (Apply first, when set); the
	// workers after them, batch after batch, the nodes of a batch at once.
	ControlPlanes []string
	Batches       [][]string
	// Done are at the target by evidence (kubelet, and a control plane's static pods):
	// left alone. Skipped are not connected, left out by --force.
	Done, Skipped []string
}

// Nodes are the nodes the upgrade changes.
func (d upgradeDecision) Nodes() []string {
	out := slices.Clone(d.ControlPlanes)
	for _, b := range d.Batches {
		out = append(out, b...)
	}
	return out
}

// decideUpgrade checks an upgrade against the rules and orders it: control planes first,
// one at a time (kubeadm upgrade apply on the first not yet upgraded while none is, then
// kubeadm upgrade node), then the workers in batches of MaxUnavailable. A node at the
// target by evidence is done and left alone, so an upgrade run again after a failure or a
// cancel picks up where the cluster is, not where a record says it was.
func decideUpgrade(s upgradeState) (upgradeDecision, error) {
	target, _, err := kubeimages.ParseKubernetesVersion(s.Target)
	if err != nil {
		return upgradeDecision{}, &UpgradeRefusal{RuleVersion, fmt.Sprintf("%q: %v", s.Target, err)}
	}
	current, _, err := kubeimages.ParseKubernetesVersion(s.Cluster)
	if err != nil {
		return upgradeDecision{}, &UpgradeRefusal{RuleVersion, fmt.Sprintf("the cluster record's version %q: %v", s.Cluster, err)}
	}
	switch c := compareVersions(target, current); {
	case c < 0:
		return upgradeDecision{}, &UpgradeRefusal{RuleNoDowngrade, fmt.Sprintf("the cluster runs %s; %s is older: kubeadm cannot downgrade a cluster", current, target)}
	case minorOf(target) > minorOf(current)+1:
		next := fmt.Sprintf("v1.%d", minorOf(current)+1)
		return upgradeDecision{}, &UpgradeRefusal{RuleOneMinor, fmt.Sprintf("the cluster runs %s; %s skips a minor release: upgrade to the newest %s patch first", current, target, next)}
	}
	d := upgradeDecision{Target: target}
	// kubeadm upgrade apply ran once the record says the cluster is at the target (its
	// record-version step follows apply's success); a static pod at the target does not
	// prove it (apply may have failed after its control-plane phase), and the agent checks
	// the cluster's configuration before running apply again.
	applied := current == target
	var cps, workers []string
	for _, n := range s.Nodes {
		// Done: the record says so (written once the node was Ready on the release and
		// uncordoned); in a record from before versions were recorded, the facts.
		doneKubelet, doneCP := sameVersion(n.RecordedKubelet, target), !n.ControlPlane || sameVersion(n.RecordedControlPlane, target)
		if n.RecordedKubelet == "" {
			doneKubelet, doneCP = sameVersion(n.Kubelet, target), !n.ControlPlane || sameVersion(n.ControlPlaneVersion, target)
		}
		n.Kubelet, n.ControlPlaneVersion = evidence(n.Kubelet, n.RecordedKubelet), evidence(n.ControlPlaneVersion, n.RecordedControlPlane)
		if n.HeldBy != "" {
			return upgradeDecision{}, &UpgradeRefusal{RuleNotHeld, fmt.Sprintf("%s is held by workflow %s: wait for it or cancel it (deckctl cancel %s)", n.Name, n.HeldBy, n.HeldBy)}
		}
		if k := n.Kubelet; k != "" {
			kv, _, err := kubeimages.ParseKubernetesVersion(k)
			switch {
			case err != nil:
				// A kubelet of a minor the table does not hold: too old or too new.
				if p, ok := kubeimages.ParseRelease(k); ok && p[1] < minorOf(target)-3 {
					return upgradeDecision{}, &UpgradeRefusal{RuleKubeletSkew, fmt.Sprintf("%s runs kubelet %s, more than three minors behind %s: upgrade or reset it first", n.Name, k, target)}
				} else if ok && p[1] > minorOf(target) {
					return upgradeDecision{}, &UpgradeRefusal{RuleKubeletNotNewer, fmt.Sprintf("%s runs kubelet %s, newer than %s: a kubelet never runs ahead of the API server", n.Name, k, target)}
				}
			case compareVersions(kv, target) > 0:
				return upgradeDecision{}, &UpgradeRefusal{RuleKubeletNotNewer, fmt.Sprintf("%s runs kubelet %s, newer than %s: a kubelet never runs ahead of the API server", n.Name, kv, target)}
			case minorOf(kv) < minorOf(target)-3:
				return upgradeDecision{}, &UpgradeRefusal{RuleKubeletSkew, fmt.Sprintf("%s runs kubelet %s, more than three minors behind %s: upgrade or reset it first", n.Name, kv, target)}
			}
		}
		switch {
		case doneCP && doneKubelet:
			d.Done = append(d.Done, n.Name)
		case !n.Connected && s.Force:
			d.Skipped = append(d.Skipped, n.Name)
		case !n.Connected:
			return upgradeDecision{}, &UpgradeRefusal{RuleConnected, fmt.Sprintf("%s's agent is not connected: start it (deckctl nodes shows it), or upgrade without it with --force", n.Name)}
		case !n.AgentCurrent:
			return upgradeDecision{}, &UpgradeRefusal{RuleAgentsCurrent, fmt.Sprintf("%s runs agent %q, not the controllers' version: upgrade the agents first (deckctl version lists them)", n.Name, n.AgentVersion)}
		case n.ControlPlane:
			cps = append(cps, n.Name)
		default:
			workers = append(workers, n.Name)
		}
	}
	per, err := maxUnavailable(s.MaxUnavailable, len(workers))
	if err != nil {
		return upgradeDecision{}, err
	}
	d.ControlPlanes = cps
	if !applied && len(cps) > 0 {
		d.Apply = cps[0]
	}
	if !applied && len(cps) == 0 && len(workers) > 0 {
		return upgradeDecision{}, &UpgradeRefusal{RuleConnected, "no control plane can be upgraded first (each is skipped): the workers' kubelets would run ahead of the API server"}
	}
	for len(workers) > 0 {
		n := min(per, len(workers))
		d.Batches = append(d.Batches, workers[:n:n])
		workers = workers[n:]
	}
	return d, nil
}

// maxUnavailable is how many of workers are upgraded at once: "" is 1, "N" is N, "P%" is
// P percent of them rounded down, at least 1.
func maxUnavailable(s string, workers int) (int, error) {
	bad := func() error {
		return &UpgradeRefusal{RuleMaxUnavailable, fmt.Sprintf("%q: give a number of workers (2) or a percentage of them (25%%)", s)}
	}
	switch {
	case s == "":
		return 1, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
		if err != nil || p < 1 || p > 100 {
			return 0, bad()
		}
		return max(1, workers*p/100), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100000 {
		return 0, bad()
	}
	return n, nil
}

// compareVersions orders two releases.
func compareVersions(a, b string) int { return kubeimages.CompareReleases(a, b) }

// minorOf is a release's minor (0 when it does not parse).
func minorOf(v string) int { p, _ := kubeimages.ParseRelease(v); return p[1] }

// sameVersion: a fact's version (with or without the v) is target.
func sameVersion(fact, target string) bool {
	return fact != "" && "v"+strings.TrimPrefix(fact, "v") == target
}

// ActionRecordVersion records the upgrade's release as the cluster's, once kubeadm upgrade
// apply moved the cluster's configuration to it; ActionRecordUpgraded records a node at the
// release once it is Ready on it (a cancelled upgrade's record says which nodes are).
const (
	ActionRecordVersion  = "record-version"
	ActionRecordUpgraded = "record-upgraded"
)

// upgradeInventory is what an upgrade's plan knows of the nodes besides the cluster record:
// each node's facts and state, and the workflow holding it.
type upgradeInventory map[string]upgradeNode

// upgradeSteps adds an upgrade decided by d of the recorded cluster cl: a health check of
// the cluster (unless forced), then every node to change stages the release (packages
// downloaded, images pulled) before any node changes, then each control plane in turn and
// the workers batch after batch: kubeadm → kubeadm upgrade → drain → kubelet and kubectl
// with a kubelet restart → uncordon → Ready on the release.
func (p *plan) upgradeSteps(u *apiv1.UpgradeWorkflow, cl *apiv1.Cluster, d upgradeDecision) {
	nodes := d.Nodes()
	if len(nodes) == 0 {
		p.notes = append(p.notes, fmt.Sprintf("every node runs %s already: nothing to upgrade", d.Target))
		return
	}
	current := cl.GetSpec().GetKubernetesVersion()
	pk := proto.Clone(cl.GetPackages()).(*taskv1.PackagesSpec)
	if pk == nil {
		pk = &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY, Hold: true}
	}
	pk.KubernetesVersion = d.Target
	// The checksums the cluster was created with are the old release's binaries': the
	// upgrade's (checked by the rules), or none (NAME.sha256 next to each binary).
	pk.Sha256 = u.GetSha256()
	if b := baseURLFor(pk.GetBaseUrl(), d.Target); b != pk.GetBaseUrl() {
		pk.BaseUrl = b
		p.notes = append(p.notes, fmt.Sprintf("packages come from %s (the cluster's packages.baseURL, for %s)", b, minorString(d.Target)))
	}
	for _, n := range d.Skipped {
		p.notes = append(p.notes, fmt.Sprintf("%s is skipped (its agent is not connected, --force): upgrade it later with deckctl upgrade apply --to %s", n, d.Target))
	}
	for _, n := range d.Done {
		p.notes = append(p.notes, fmt.Sprintf("%s runs %s already: left alone", n, d.Target))
	}

	var first []string // what every stage step waits for
	if !u.GetForce() {
		var check []string
		for _, n := range cl.GetNodes() {
			check = append(check, n.GetName())
		}
		at := firstOf(d.ControlPlanes, firstControlPlane(cl))
		h := p.add(at, "health", "check the API server, that every node is Ready and every etcd member healthy", nil,
			spec(&taskv1.ClusterHealthSpec{Nodes: check}))
		h.Node, h.AnyControlPlane, h.SelfAllowed, h.MaxAttempts = "", true, true, 1
		first = []string{h.Name}
	}
	var staged []string
	_, pulled := networkImages(cl.GetSpec())
	for _, n := range nodes {
		sp := proto.Clone(pk).(*taskv1.PackagesSpec)
		sp.DownloadOnly, sp.Components = true, nil
		a := p.add(n, "stage-packages", "download kubelet, kubeadm and kubectl "+d.Target, first, spec(sp))
		// After the packages: the images are what the staged kubeadm lists (its etcd,
		// CoreDNS and pause tags), when the packages are binaries it can run.
		b := p.add(n, "stage-images", "pull the images of "+d.Target, []string{a.Name}, spec(&taskv1.ImagesSpec{
			Action: taskv1.ImagesAction_IMAGES_ACTION_PULL, KubernetesVersion: d.Target, Registry: cl.GetSpec().GetRegistry(), ExtraImages: pulled}))
		staged = append(staged, a.Name, b.Name)
		p.hold(n)
	}
	drainTimeout := u.GetDrainTimeout().AsDuration()
	if drainTimeout <= 0 {
		drainTimeout = defaultDrainTime
	}
	chain := func(n string, apply bool, deps []string) (upgraded, last string) {
		kp := proto.Clone(pk).(*taskv1.PackagesSpec)
		kp.Components = []string{"kubeadm"}
		k := p.add(n, "kubeadm", "install kubeadm "+d.Target, deps, spec(kp))
		k.Gate = true // a paused upgrade starts no other node
		what := "kubeadm upgrade node"
		if apply {
			what = "kubeadm upgrade apply " + d.Target
		}
		up := p.add(n, "upgrade", what, []string{k.Name}, spec(&taskv1.KubeadmUpgradeSpec{KubernetesVersion: d.Target, Apply: apply}))
		up.MaxAttempts = 2
		dr := p.add(n, "drain", "cordon and drain", []string{up.Name}, spec(&taskv1.DrainSpec{NodeName: n, Timeout: durationpb.New(drainTimeout)}))
		dr.Node, dr.AnyControlPlane, dr.SelfAllowed, dr.MaxAttempts = "", true, true, 1
		dr.Timeout = durationpb.New(drainTimeout + time.Minute)
		lp := proto.Clone(pk).(*taskv1.PackagesSpec)
		lp.Components, lp.RestartKubelet = []string{"kubelet", "kubectl"}, true
		kl := p.add(n, "kubelet", "install kubelet and kubectl "+d.Target+" and restart the kubelet", []string{dr.Name}, spec(lp))
		un := p.add(n, "uncordon", "uncordon", []string{kl.Name}, spec(&taskv1.DrainSpec{NodeName: n, Uncordon: true}))
		un.Node, un.AnyControlPlane, un.SelfAllowed = "", true, true
		rd := p.add(n, "ready", "wait until it is Ready with kubelet "+d.Target, []string{un.Name}, spec(&taskv1.NodeReadySpec{
			NodeName: n, Wait: taskv1.NodeWait_NODE_WAIT_READY, KubeletVersion: d.Target}))
		rd.Node, rd.AnyControlPlane, rd.SelfAllowed = "", true, true
		rec := p.add(n, "record", "record the node at "+d.Target, []string{rd.Name}, nil)
		rec.Action = ActionRecordUpgraded
		return up.Name, rec.Name
	}
	prev := staged
	recorded := current == d.Target
	for _, n := range d.ControlPlanes {
		up, last := chain(n, n == d.Apply, prev)
		prev = []string{last}
		if !recorded {
			// The cluster's configuration is the release's once a control plane ran it.
			rv := p.add(n, "record-version", "record "+d.Target+" as the cluster's version", []string{up}, nil)
			rv.Action = ActionRecordVersion
			recorded = true
			prev = append(prev, rv.Name)
		}
		p.changes = append(p.changes, fmt.Sprintf("upgrade control plane %s to %s (%s)", n, d.Target, map[bool]string{true: "kubeadm upgrade apply", false: "kubeadm upgrade node"}[n == d.Apply]))
	}
	if !recorded {
		// Every control plane is at the release (a run cancelled after them): record it.
		rv := p.add(firstControlPlane(cl), "record-version", "record "+d.Target+" as the cluster's version", prev, nil)
		rv.Action = ActionRecordVersion
		prev = append(prev, rv.Name)
	}
	for i, batch := range d.Batches {
		var ends []string
		for _, n := range batch {
			_, last := chain(n, false, prev)
			ends = append(ends, last)
		}
		prev = ends
		p.changes = append(p.changes, fmt.Sprintf("upgrade worker batch %d of %d to %s: %s", i+1, len(d.Batches), d.Target, strings.Join(batch, ", ")))
	}
}

// minorSegment is the minor release in a package repository's URL, pkgs.k8s.io's way
// (https://pkgs.k8s.io/core:/stable:/v1.33/deb): a repository per minor.
var minorSegment = regexp.MustCompile(`/v[0-9]+\.[0-9]+/`)

// baseURLFor is a package repository URL for version: its (last) minor segment, if any,
// becomes version's (an upgrade's packages, and every join once the cluster upgraded).
func baseURLFor(base, version string) string {
	all := minorSegment.FindAllStringIndex(base+"/", -1)
	if len(all) == 0 || base == "" {
		return base
	}
	loc := all[len(all)-1] // the last: the repository's, not an API's version before it
	return strings.TrimSuffix((base + "/")[:loc[0]]+"/"+minorString(version)+"/"+(base + "/")[loc[1]:], "/")
}

// minorString is "v1.33" of "v1.33.13".
func minorString(v string) string {
	if i := strings.LastIndex(v, "."); i > 0 {
		return v[:i]
	}
	return v
}

func firstOf(s []string, or string) string {
	if len(s) > 0 {
		return s[0]
	}
	return or
}

// upgradeChecksums checks an upgrade's pins against the cluster's packages: binaries
// pinned by SHA-256 need the release's pin of each binary pinned before (the old ones would
// refuse the new binaries, and dropping them would trust the mirror's own NAME.sha256);
// pins are for binaries only.
func upgradeChecksums(pk *taskv1.PackagesSpec, pins map[string]string, changes bool) error {
	binaries := pk.GetSource() == taskv1.PackageSource_PACKAGE_SOURCE_BINARIES
	if len(pins) > 0 && !binaries {
		return &UpgradeRefusal{RuleChecksums, "sha256 pins the binaries' digests, but the cluster's packages come from a repository (its signing key checks them): leave them out"}
	}
	if !binaries || !changes {
		return nil
	}
	var missing []string
	for _, b := range []string{"kubelet", "kubeadm", "kubectl"} {
		if pk.GetSha256()[b] != "" && pins[b] == "" {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return &UpgradeRefusal{RuleChecksums, fmt.Sprintf("the cluster pins the SHA-256 of %s: give the release's with --sha256 NAME=DIGEST (each)", strings.Join(missing, ", "))}
	}
	return nil
}
