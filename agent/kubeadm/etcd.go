package kubeadm

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/deckhandhq/deckhand/agent/facts"
	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/runtime"
	"github.com/deckhandhq/deckhand/agent/tasks"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	etcdPKI      = "/etc/kubernetes/pki/etcd"
	manifestsDir = "/etc/kubernetes/manifests"
	// localEtcd is a stacked member's client URL on the control plane itself (kubeadm's
	// etcd listens on 127.0.0.1:2379 beside its advertised address).
	localEtcd = "https://127.0.0.1:2379"
	// etcdWait bounds the waits for an etcd member to answer.
	etcdWait = 3 * time.Minute
	// bumpRevision is how far a restore moves etcd's revision on (Kubernetes' guide: 1e9).
	bumpRevision = 1_000_000_000
)

// controlPlanePods are the static pods a restore stops, the API server first (nothing
// writes to etcd once it is gone) and etcd last; they start again in the reverse order.
var controlPlanePods = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}

var (
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	restoreRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	etcdFlagRE = func(flag string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^([ \t]*- --` + flag + `=)(\S*)[ \t]*$`)
	}
	imageRE = regexp.MustCompile(`(?m)^[ \t]*image:[ \t]*(\S+)[ \t]*$`)
)

// etcdClient dials etcd at endpoints with kubeadm's health-check client certificate (the
// one kubeadm's own etcd checks use).
func etcdClient(h *host.Host, endpoints ...string) (*clientv3.Client, error) {
	ca, err := h.ReadFile(etcdPKI + "/ca.crt")
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(h.Path(etcdPKI+"/healthcheck-client.crt"), h.Path(etcdPKI+"/healthcheck-client.key"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s/ca.crt: no certificate", etcdPKI)
	}
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
	})
}

func notControlPlane(what string) error {
	return tasks.Errorf("NOT_CONTROL_PLANE", "run it on a control plane with kubeadm's stacked etcd", "no %s/etcd.yaml nor a restore's copy of it: %s needs a control plane's own etcd member", manifestsDir, what)
}

// EtcdSnapshot takes a snapshot of the cluster's etcd through this control plane's member
// into facts.EtcdSnapshotDir (see EtcdSnapshotSpec).
func EtcdSnapshot(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetEtcdSnapshot()
	name := spec.GetName()
	if !facts.SnapshotNameRE.MatchString(name) {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give 1-63 characters of a-z, 0-9 and -", "snapshot name %q", name)
	}
	if id := RestoreInProgress(h); id != "" {
		return nil, restoreInProgressError(id)
	}
	if !h.Exists(manifestsDir + "/etcd.yaml") {
		return nil, notControlPlane("a snapshot")
	}
	dir := facts.EtcdSnapshotDir
	db := filepath.Join(dir, name+".db")
	if h.Exists(db) {
		return nil, tasks.Errorf("SNAPSHOT_EXISTS", "give another name, or delete "+db+" first", "%s has a snapshot %s already", t.GetNode(), name)
	}
	h.Record("file", db, "an etcd snapshot (0600) and its record "+name+".json")
	if h.DryRun {
		return nil, nil
	}
	cli, err := etcdClient(h, localEtcd)
	if err != nil {
		return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check this control plane's etcd certificates under "+etcdPKI, "etcd client: %v", err)
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := cli.Status(sctx, localEtcd)
	cancel()
	if err != nil {
		return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check this control plane's etcd (crictl ps --name etcd)", "etcd at %s: %v", localEtcd, err)
	}
	if err := os.MkdirAll(h.Path(dir), 0o700); err != nil {
		return nil, err
	}
	if stale, _ := filepath.Glob(h.Path(dir + "/.part-*")); len(stale) > 0 {
		for _, p := range stale {
			os.Remove(p) // a snapshot an earlier task did not finish (the agent stopped)
		}
	}
	tmp, err := os.CreateTemp(h.Path(dir), ".part-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	start := time.Now()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		tmp.Close()
		return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check this control plane's etcd", "snapshot: %v", err)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), rc)
	rc.Close()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, tasks.Errorf("SNAPSHOT_FAILED", "check the free space under "+dir, "snapshot after %d bytes: %v", n, err)
	}
	meta := facts.EtcdSnapshotMeta{Name: name, SHA256: hex.EncodeToString(sum.Sum(nil)), Size: n, Revision: st.Header.GetRevision(), Taken: start.UTC()}
	if err := os.Rename(tmp.Name(), h.Path(db)); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(meta)
	if _, err := h.WriteFile(filepath.Join(dir, name+".json"), b, 0o600); err != nil {
		return nil, err
	}
	e.Logf("etcd snapshot %s: %d bytes at revision %d, SHA-256 %s, in %v", db, n, meta.Revision, meta.SHA256, time.Since(start).Round(time.Millisecond))
	if err := pruneScheduled(h, int(spec.GetKeep()), e.Logf); err != nil {
		return nil, err
	}
	if addr := spec.GetUploadAddress(); addr != "" {
		if err := uploadSnapshot(ctx, h, e, addr, spec.GetTransferId(), db, meta.SHA256); err != nil {
			return nil, err
		}
	}
	// "sha256:" first: a bare 64-hex value reads as a kubeadm certificate key to the masker.
	return map[string]string{"name": name, "path": db, "sha256": "sha256:" + meta.SHA256, "size": strconv.FormatInt(n, 10), "revision": strconv.FormatInt(meta.Revision, 10)}, nil
}

// uploadSnapshot sends the snapshot to the controller replica whose caller waits for it.
func uploadSnapshot(ctx context.Context, h *host.Host, e *tasks.Emitter, addr, id, db, want string) error {
	up := tasks.UploaderFrom(ctx)
	if up == nil {
		return tasks.Errorf("UPLOAD_FAILED", "run the agent as deckhand-agent", "this agent cannot upload")
	}
	f, err := os.Open(h.Path(db))
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	sum, n, err := up(ctx, addr, id, f)
	if err != nil {
		return tasks.Errorf("UPLOAD_FAILED", "the snapshot stays on this node: deckctl etcd snapshots lists it", "send the snapshot to the controller at %s: %v", addr, err)
	}
	if sum != want {
		return tasks.Errorf("UPLOAD_FAILED", "take another snapshot", "the snapshot changed on the disk while it was sent: SHA-256 %s, %s when taken", sum, want)
	}
	e.Logf("sent the snapshot to the controller at %s: %d bytes in %v", addr, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// pruneScheduled keeps the newest keep scheduled snapshots (names starting "scheduled-") and
// deletes the others; keep 0 deletes none, and other snapshots are never deleted.
func pruneScheduled(h *host.Host, keep int, logf func(string, ...any)) error {
	if keep <= 0 {
		return nil
	}
	kept := 0
	for _, m := range facts.ReadEtcdSnapshots(h.Path("/")) {
		if !strings.HasPrefix(m.Name, "scheduled-") {
			continue
		}
		if kept++; kept <= keep {
			continue
		}
		for _, f := range []string{m.Name + ".db", m.Name + ".json"} {
			if _, err := h.RemoveFile(filepath.Join(facts.EtcdSnapshotDir, f)); err != nil {
				return err
			}
		}
		logf("deleted the scheduled snapshot %s (%d are kept)", m.Name, keep)
	}
	return nil
}

// fileSHA256 is the SHA-256 (hex) and size of host file p.
func fileSHA256(h *host.Host, p string) (string, int64, error) {
	f, err := os.Open(h.Path(p))
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, f)
	return hex.EncodeToString(sum.Sum(nil)), n, err
}

// restorePaths are where a restore keeps what it moves aside.
type restorePaths struct {
	stash string // the stopped static pods' manifests
}

func restoreDirs(id string) restorePaths {
	return restorePaths{stash: restoreStashes + "/restore-" + strings.TrimPrefix(id, "restore-")}
}

// restoreStashes is where restores keep the manifests they stopped.
const restoreStashes = "/etc/kubernetes/deckhand"

// RestoreInProgress is the ID of a restore whose stopped static pods are not back on this
// node ("" when none): until it ends, this control plane runs no API server or etcd.
func RestoreInProgress(h *host.Host) string {
	ms, _ := filepath.Glob(h.Path(restoreStashes + "/restore-*/*.yaml"))
	for _, m := range ms {
		return strings.TrimPrefix(filepath.Base(filepath.Dir(m)), "restore-")
	}
	return ""
}

// restoreInProgressError: another restore stopped this control plane and has not ended.
func restoreInProgressError(id string) error {
	return tasks.Errorf("RESTORE_IN_PROGRESS", "finish it first: deckctl workflow retry on the restore workflow (deckctl workflows), which runs its remaining steps",
		"the etcd restore restore-%s stopped this control plane's static pods (their manifests are in %s/restore-%s) and has not ended", id, restoreStashes, id)
}

// etcdManifest is this node's etcd manifest: in manifestsDir, or moved to the stash by STOP.
func etcdManifest(h *host.Host, rp restorePaths) (string, []byte, error) {
	for _, p := range []string{manifestsDir + "/etcd.yaml", rp.stash + "/etcd.yaml"} {
		if b, err := h.ReadFile(p); err == nil {
			return p, b, nil
		}
	}
	return "", nil, notControlPlane("a restore")
}

// etcdFlag is a flag's value in an etcd manifest's command, or def.
func etcdFlag(manifest []byte, flag, def string) string {
	if m := etcdFlagRE(flag).FindSubmatch(manifest); m != nil {
		return string(m[2])
	}
	return def
}

// EtcdRestore runs one phase of an etcd restore (see EtcdRestoreSpec).
func EtcdRestore(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	spec := t.GetSpec().GetEtcdRestore()
	id := spec.GetRestoreId()
	if !restoreRE.MatchString(id) {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "give 1-63 characters of a-z, 0-9 and -", "restore_id %q", id)
	}
	rp := restoreDirs(id)
	if other := RestoreInProgress(h); other != "" && other != strings.TrimPrefix(id, "restore-") {
		return nil, restoreInProgressError(other)
	}
	switch spec.GetPhase() {
	case taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_CHECK:
		return restoreCheck(ctx, t, h, e, rp)
	case taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_STOP:
		return restoreStop(ctx, h, e, rp)
	case taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_RESTORE:
		return restoreFirst(ctx, t, h, e, rp)
	case taskv1.EtcdRestorePhase_ETCD_RESTORE_PHASE_REJOIN:
		return restoreRejoin(ctx, t, h, e, rp)
	}
	return nil, tasks.Errorf("INVALID_ARGUMENT", "give check, stop, restore or rejoin", "phase %v", spec.GetPhase())
}

// checkSnapshot: the snapshot is here, whole: its SHA-256 is the one recorded.
func checkSnapshot(t *taskv1.Task, h *host.Host, e *tasks.Emitter) (string, error) {
	spec := t.GetSpec().GetEtcdRestore()
	name, want := spec.GetSnapshot(), spec.GetSha256()
	if !facts.SnapshotNameRE.MatchString(name) || !sha256RE.MatchString(want) {
		return "", tasks.Errorf("INVALID_ARGUMENT", "give a snapshot's name and its SHA-256 as deckctl etcd snapshots lists them", "snapshot %q, sha256 %q", name, want)
	}
	db := filepath.Join(facts.EtcdSnapshotDir, name+".db")
	got, n, err := fileSHA256(h, db)
	if err != nil {
		return "", tasks.Errorf("SNAPSHOT_MISSING", "deckctl etcd snapshots lists the snapshots each control plane keeps", "%s: %v", db, err)
	}
	if got != want {
		recorded := ""
		for _, m := range facts.ReadEtcdSnapshots(h.Path("/")) {
			if m.Name == name && m.Size != n {
				recorded = fmt.Sprintf(": it has %d bytes, %d when it was taken (truncated?)", n, m.Size)
			}
		}
		return "", tasks.Errorf("SNAPSHOT_CORRUPT", "restore from another snapshot (deckctl etcd snapshots); nothing was stopped",
			"snapshot %s on %s has SHA-256 %s, not the %s recorded when it was taken%s", name, t.GetNode(), got, want, recorded)
	}
	e.Logf("snapshot %s: %d bytes, SHA-256 %s as recorded", db, n, got)
	return db, nil
}

// withEtcdutl runs fn with an etcdutl: the one in the cluster's etcd image (the image the
// etcd manifest names, mounted read-only and unmounted after: the same etcd version as the
// cluster's), else one on the PATH.
func withEtcdutl(ctx context.Context, h *host.Host, e *tasks.Emitter, rp restorePaths, fn func(bin string) error) error {
	_, m, err := etcdManifest(h, rp)
	if err != nil {
		return err
	}
	var mountErr error
	if im := imageRE.FindSubmatch(m); im != nil {
		mnt := rp.stash + "/etcd-image"
		if err := os.MkdirAll(h.Path(mnt), 0o700); err != nil {
			return err
		}
		ctr := []string{"ctr", "--address", h.Path(runtime.HostSocket(h)), "-n", "k8s.io", "images"}
		if mountErr = h.Run(ctx, "mount the etcd image", append(ctr, "mount", string(im[1]), h.Path(mnt))...); mountErr == nil {
			defer func() {
				if err := h.Run(context.WithoutCancel(ctx), "unmount the etcd image", append(ctr, "unmount", "--rm", h.Path(mnt))...); err != nil {
					e.Logf("unmount %s: %v", mnt, err)
				}
			}()
			bin := mnt + "/usr/local/bin/etcdutl" // a host path, as the commands' names are
			if _, err := os.Stat(h.Path(bin)); err == nil {
				e.Logf("etcdutl from the cluster's etcd image %s", im[1])
				return fn(bin)
			}
			mountErr = fmt.Errorf("the image %s has no /usr/local/bin/etcdutl", im[1])
		}
	}
	if h.Has("etcdutl") {
		e.Logf("etcdutl from the PATH (the etcd image's: %v)", mountErr)
		return fn("etcdutl")
	}
	return tasks.Errorf("ETCDUTL_MISSING", "install etcdutl of the cluster's etcd version on the PATH (it is in the etcd release tarball)",
		"no etcdutl: none in the cluster's etcd image (%v) nor on the PATH", mountErr)
}

// clusterHealthy says whether every etcd member answers and the API server is ready.
func clusterHealthy(ctx context.Context, h *host.Host) (bool, string) {
	cli, err := etcdClient(h, localEtcd)
	if err != nil {
		return false, "no etcd client: " + err.Error()
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ms, err := cli.MemberList(cctx)
	if err != nil {
		return false, "etcd does not list its members: " + err.Error()
	}
	for _, m := range ms.Members {
		if len(m.GetClientURLs()) == 0 {
			return false, fmt.Sprintf("etcd member %x has not started", m.GetID())
		}
		if _, err := cli.Status(cctx, m.GetClientURLs()[0]); err != nil {
			return false, fmt.Sprintf("etcd member %s does not answer: %v", m.GetName(), err)
		}
	}
	argv := []string{"kubectl", "--kubeconfig", adminConf, "--request-timeout=5s", "get", "--raw=/readyz"}
	if s := localAPIServer(h); s != "" {
		argv = append(argv[:3], append([]string{"--server", s}, argv[3:]...)...)
	}
	if _, err := h.QueryQuiet(cctx, argv...); err != nil {
		return false, "the API server is not ready: " + err.Error()
	}
	return true, fmt.Sprintf("%d etcd members answer and the API server is ready", len(ms.Members))
}

func restoreCheck(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter, rp restorePaths) (map[string]string, error) {
	if _, _, err := etcdManifest(h, rp); err != nil {
		return nil, err
	}
	db, err := checkSnapshot(t, h, e)
	if err != nil {
		return nil, err
	}
	if h.DryRun {
		e.Logf("would check the snapshot with etcdutl snapshot status, and that etcdutl restores with --bump-revision")
	} else if err := withEtcdutl(ctx, h, e, rp, func(bin string) error {
		out, err := h.QueryQuiet(ctx, bin, "snapshot", "status", h.Path(db), "-w", "json")
		if err != nil {
			return tasks.Errorf("SNAPSHOT_CORRUPT", "restore from another snapshot; nothing was stopped", "etcdutl snapshot status %s: %v", db, err)
		}
		e.Logf("etcdutl snapshot status: %s", strings.TrimSpace(string(out)))
		help, _ := h.QueryQuiet(ctx, bin, "snapshot", "restore", "--help")
		if !strings.Contains(string(help), "--bump-revision") || !strings.Contains(string(help), "--mark-compacted") {
			return tasks.Errorf("ETCDUTL_TOO_OLD", "put etcdutl 3.5.10 or newer on the PATH (the cluster's etcd image's is older)",
				"%s has no --bump-revision and --mark-compacted: without them, clients watching from before the restore could miss changes", bin)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	healthy, why := clusterHealthy(ctx, h)
	e.Logf("the cluster now: %s", why)
	if healthy && !t.GetSpec().GetEtcdRestore().GetForce() {
		return nil, tasks.Errorf("CLUSTER_HEALTHY", "a restore replaces everything written since the snapshot; give --force to restore anyway",
			"the cluster is healthy (%s): nothing was stopped; --force restores anyway", why)
	}
	if h.DryRun {
		h.Record("container", "kube-apiserver, kube-controller-manager, kube-scheduler, etcd", "stopped on every control plane, etcd restored from "+db)
	}
	return map[string]string{"healthy": strconv.FormatBool(healthy)}, nil
}

// runningPods lists the running containers of the named static pods.
func runningPods(ctx context.Context, h *host.Host, names []string) ([]string, error) {
	cc, err := runtime.Dial(h.Path(runtime.HostSocket(h)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(cc).ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": "kube-system"},
	}})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range resp.GetContainers() {
		n := c.GetLabels()["io.kubernetes.container.name"]
		for _, want := range names {
			if n == want && strings.HasPrefix(c.GetLabels()["io.kubernetes.pod.name"], want+"-") {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// restoreStop moves the control plane's static pod manifests to the stash (the kubelet
// stops the pods) and waits until their containers are gone.
func restoreStop(ctx context.Context, h *host.Host, e *tasks.Emitter, rp restorePaths) (map[string]string, error) {
	if _, _, err := etcdManifest(h, rp); err != nil {
		return nil, err
	}
	for _, p := range controlPlanePods {
		h.Record("file", manifestsDir+"/"+p+".yaml", "moved to "+rp.stash+" (the kubelet stops "+p+")")
	}
	if h.DryRun {
		return nil, nil
	}
	if err := os.MkdirAll(h.Path(rp.stash), 0o700); err != nil {
		return nil, err
	}
	for _, p := range controlPlanePods {
		from, to := manifestsDir+"/"+p+".yaml", rp.stash+"/"+p+".yaml"
		if !h.Exists(from) {
			continue
		}
		if err := os.Rename(h.Path(from), h.Path(to)); err != nil {
			return nil, err
		}
		e.Logf("moved %s to %s", from, to)
	}
	return nil, waitPods(ctx, h, e, nil)
}

// waitPods waits until exactly the control-plane pods in want run.
func waitPods(ctx context.Context, h *host.Host, e *tasks.Emitter, want []string) error {
	start := time.Now()
	var last string
	for time.Since(start) < etcdWait {
		running, err := runningPods(ctx, h, controlPlanePods)
		if err == nil {
			gone := true
			for _, r := range running {
				if !slices.Contains(want, r) {
					gone = false
				}
			}
			if gone && (len(want) == 0 || len(running) >= len(want)) {
				if len(want) == 0 {
					e.Logf("the control plane's static pods stopped (after %v)", time.Since(start).Round(100*time.Millisecond))
				}
				return nil
			}
			last = fmt.Sprintf("running: %v", running)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return tasks.Errorf("STOP_FAILED", "look at the kubelet's log", "the kubelet did not stop the control plane's static pods within %v (%s)", etcdWait, last)
}

// moveAside moves the member directory of etcd's data directory to DATA/member.before-ID
// once (inside the data directory: it is often a file system of its own, which a rename
// cannot leave); a later attempt finds it there and clears whatever a failed start left in
// DATA/member.
func moveAside(h *host.Host, e *tasks.Emitter, data, id string) error {
	return moveAsideLog(h, data, id, e.Logf)
}

func moveAsideLog(h *host.Host, data, id string, logf func(string, ...any)) error {
	member, aside := data+"/member", data+"/member.before-"+id
	if h.Exists(aside) {
		_, err := h.RemoveAll(member)
		return err
	}
	if !h.Exists(member) {
		return nil
	}
	if err := os.Rename(h.Path(member), h.Path(aside)); err != nil {
		return err
	}
	logf("kept the old etcd data as %s", aside)
	return nil
}

// startPods moves the stashed manifests back, etcd first, waiting until it answers (and
// then for afterEtcd, when given), then the others, waiting until the API server is ready.
func startPods(ctx context.Context, h *host.Host, e *tasks.Emitter, rp restorePaths, afterEtcd func() error) error {
	order := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	for i, p := range order {
		from, to := rp.stash+"/"+p+".yaml", manifestsDir+"/"+p+".yaml"
		if h.Exists(from) {
			if err := os.Rename(h.Path(from), h.Path(to)); err != nil {
				return err
			}
			e.Logf("moved %s back to %s", from, to)
		}
		if i == 0 {
			if err := waitEtcd(ctx, h, e); err != nil {
				return err
			}
			if afterEtcd != nil {
				if err := afterEtcd(); err != nil {
					return err
				}
			}
		}
	}
	return waitLocalAPI(ctx, h, e, localAPIServer(h))
}

// waitEtcd waits until this control plane's etcd member answers.
func waitEtcd(ctx context.Context, h *host.Host, e *tasks.Emitter) error {
	cli, err := etcdClient(h, localEtcd)
	if err != nil {
		return tasks.Errorf("ETCD_UNAVAILABLE", "check "+etcdPKI, "etcd client: %v", err)
	}
	defer cli.Close()
	start := time.Now()
	var last error
	for time.Since(start) < etcdWait {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := cli.Status(sctx, localEtcd)
		cancel()
		if err == nil {
			e.Logf("etcd answers (member %x, revision %d, after %v)", st.Header.GetMemberId(), st.Header.GetRevision(), time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	attachDiagnostics(ctx, h, e)
	return tasks.Errorf("ETCD_UNAVAILABLE", "look at etcd's log (crictl logs) and the attached diagnostics", "etcd did not answer within %v: %v", etcdWait, last)
}

// restoreFirst makes etcd's new data directory from the snapshot and starts the control
// plane again, as a one-member etcd cluster.
func restoreFirst(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter, rp restorePaths) (map[string]string, error) {
	_, m, err := etcdManifest(h, rp)
	if err != nil {
		return nil, err
	}
	data, name, peer := etcdFlag(m, "data-dir", "/var/lib/etcd"), etcdFlag(m, "name", t.GetNode()), etcdFlag(m, "initial-advertise-peer-urls", "")
	if peer == "" || strings.Contains(peer, ",") {
		return nil, tasks.Errorf("ETCD_MANIFEST", "restore by hand (etcdutl snapshot restore)", "the etcd manifest has no single --initial-advertise-peer-urls (%q)", peer)
	}
	h.Record("directory", data, "restored from snapshot "+t.GetSpec().GetEtcdRestore().GetSnapshot()+"; the old data kept as "+data+"/member.before-"+t.GetSpec().GetEtcdRestore().GetRestoreId())
	if h.DryRun {
		return nil, nil
	}
	done := rp.stash + "/restored"
	if !h.Exists(done) {
		db, err := checkSnapshot(t, h, e)
		if err != nil {
			return nil, err
		}
		fresh := data + "/" + t.GetSpec().GetEtcdRestore().GetRestoreId() // on the data directory's file system
		if _, err := h.RemoveAll(fresh); err != nil {
			return nil, err
		}
		if err := withEtcdutl(ctx, h, e, rp, func(bin string) error {
			out, err := h.RunOutput(ctx, "etcdutl snapshot restore", bin, "snapshot", "restore", h.Path(db), "--name", name,
				"--initial-cluster", name+"="+peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster-token", "deckhand-"+t.GetSpec().GetEtcdRestore().GetRestoreId(), "--data-dir", h.Path(fresh),
				// Revisions move on past any a client saw before the restore, and the old ones
				// read as compacted: watches start again from a fresh list instead of missing
				// changes (as Kubernetes' etcd restore guide asks).
				"--bump-revision", strconv.Itoa(bumpRevision), "--mark-compacted")
			logOutput(e, string(out))
			if err != nil {
				return tasks.Errorf("RESTORE_FAILED", "look at the task log; the control plane is stopped: deckctl workflow retry runs the restore again", "etcdutl snapshot restore: %v", err)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		if err := moveAside(h, e, data, t.GetSpec().GetEtcdRestore().GetRestoreId()); err != nil {
			return nil, err
		}
		if err := os.Rename(h.Path(fresh+"/member"), h.Path(data+"/member")); err != nil {
			return nil, err
		}
		if _, err := h.RemoveAll(fresh); err != nil {
			return nil, err
		}
		if _, err := h.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
			return nil, err
		}
		e.Logf("etcd's data directory %s is the snapshot's now: a new cluster of one member, %s", data, name)
	}
	if err := startPods(ctx, h, e, rp, nil); err != nil {
		return nil, err
	}
	return map[string]string{"restored": name}, nil
}

// restoreRejoin adds this control plane's etcd to the restored cluster as a new member
// (the member list and --initial-cluster-state existing in its manifest), with an empty data
// directory: as a learner, which does not count for the quorum until it caught up and is
// promoted (a voting member that never started would leave the restored one without its
// quorum, and no member could then be removed); then the control plane starts again.
func restoreRejoin(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter, rp restorePaths) (map[string]string, error) {
	path, m, err := etcdManifest(h, rp)
	if err != nil {
		return nil, err
	}
	first := t.GetSpec().GetEtcdRestore().GetFirstAddress()
	data, name, peer := etcdFlag(m, "data-dir", "/var/lib/etcd"), etcdFlag(m, "name", t.GetNode()), etcdFlag(m, "initial-advertise-peer-urls", "")
	if peer == "" || first == "" || strings.Contains(peer, ",") {
		return nil, tasks.Errorf("ETCD_MANIFEST", "re-join it by hand (etcdctl member add)", "the etcd manifest's --initial-advertise-peer-urls %q, first_address %q", peer, first)
	}
	h.Record("directory", data, "emptied (its member data kept as "+data+"/member.before-"+t.GetSpec().GetEtcdRestore().GetRestoreId()+"): the member joins the restored cluster")
	if h.DryRun {
		return nil, nil
	}
	endpoint := "https://" + hostPort(first, "2379")
	cli, err := etcdClient(h, endpoint)
	if err != nil {
		return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check "+etcdPKI, "etcd client: %v", err)
	}
	defer cli.Close()
	done := rp.stash + "/rejoined"
	if !h.Exists(done) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ms, err := cli.MemberList(cctx)
		if err != nil {
			return nil, tasks.Errorf("ETCD_UNAVAILABLE", "check the restored control plane's etcd", "list the members at %s: %v", endpoint, err)
		}
		mine := uint64(0)
		for _, mm := range ms.Members {
			if slices.Contains(mm.GetPeerURLs(), peer) {
				mine = mm.GetID() // added by an earlier attempt
			}
		}
		members := ms.Members
		if mine == 0 {
			added, err := cli.MemberAddAsLearner(cctx, []string{peer})
			if err != nil {
				return nil, tasks.Errorf("ETCD_MEMBER_ADD_FAILED", "look at the restored etcd's log", "add member %s (%s) at %s: %v", name, peer, endpoint, err)
			}
			mine, members = added.Member.GetID(), added.Members
			e.Logf("added etcd member %x (%s, %s) to the restored cluster as a learner", mine, name, peer)
		}
		var initial []string
		for _, mm := range members {
			n := mm.GetName()
			if mm.GetID() == mine {
				n = name
			}
			if n == "" || len(mm.GetPeerURLs()) == 0 {
				return nil, tasks.Errorf("ETCD_MEMBERS", "remove the member that never started (etcdctl member remove, through the restored control plane) and retry", "member %x has no name: it never started", mm.GetID())
			}
			initial = append(initial, n+"="+mm.GetPeerURLs()[0])
		}
		m2, err := setEtcdFlag(m, "initial-cluster", strings.Join(initial, ","))
		if err == nil {
			m2, err = setEtcdFlag(m2, "initial-cluster-state", "existing")
		}
		if err != nil {
			return nil, tasks.Errorf("ETCD_MANIFEST", "re-join it by hand", "%s: %v", path, err)
		}
		if err := moveAside(h, e, data, t.GetSpec().GetEtcdRestore().GetRestoreId()); err != nil {
			return nil, err
		}
		if _, err := h.WriteFile(path, m2, 0o600); err != nil {
			return nil, err
		}
		if _, err := h.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
			return nil, err
		}
		e.Logf("etcd joins as %s with --initial-cluster=%s", name, strings.Join(initial, ","))
	}
	if err := startPods(ctx, h, e, rp, func() error { return promote(ctx, cli, e, peer) }); err != nil {
		return nil, err
	}
	return map[string]string{"rejoined": name}, nil
}

// promote makes the learner with peer URL peer a voting member once it has caught up (etcd
// refuses until then).
func promote(ctx context.Context, cli *clientv3.Client, e *tasks.Emitter, peer string) error {
	start := time.Now()
	var last error
	for time.Since(start) < etcdWait {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ms, err := cli.MemberList(cctx)
		if err == nil {
			err = fmt.Errorf("no member with peer URL %s", peer)
			for _, m := range ms.Members {
				if !slices.Contains(m.GetPeerURLs(), peer) {
					continue
				}
				if !m.GetIsLearner() {
					cancel()
					e.Logf("etcd member %x is a voting member (after %v)", m.GetID(), time.Since(start).Round(100*time.Millisecond))
					return nil
				}
				_, err = cli.MemberPromote(cctx, m.GetID())
			}
		}
		cancel()
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return tasks.Errorf("ETCD_PROMOTE_FAILED", "look at this control plane's etcd log; deckctl workflow retry tries again", "the learner %s was not promoted within %v: %v", peer, etcdWait, last)
}

// setEtcdFlag sets --flag=value in an etcd manifest's command: the line replaced, or added
// after --name.
func setEtcdFlag(m []byte, flag, value string) ([]byte, error) {
	re := etcdFlagRE(flag)
	if re.Match(m) {
		return re.ReplaceAll(m, []byte("${1}"+value)), nil
	}
	at := etcdFlagRE("name").FindIndex(m)
	if at == nil {
		return nil, errors.New("no --name flag to add --" + flag + " after")
	}
	line := string(m[at[0]:at[1]])
	indent := line[:strings.Index(line, "-")]
	return append(append(append([]byte{}, m[:at[1]]...), []byte("\n"+indent+"- --"+flag+"="+value)...), m[at[1]:]...), nil
}

// hostPort joins an address (IPv6 too) and a port.
func hostPort(addr, port string) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + port
	}
	return addr + ":" + port
}
