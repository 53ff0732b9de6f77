package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func newEtcdCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "etcd", Short: "The cluster's etcd: snapshots, members, restore"}
	cmd.AddCommand(newEtcdSnapshotCmd(o), newEtcdSnapshotsCmd(o), newEtcdMembersCmd(o), newEtcdRestoreCmd(o))
	return cmd
}

// pickControlPlane is node when given, else the first control plane of the cluster record
// whose agent is connected.
func pickControlPlane(ctx context.Context, cc grpc.ClientConnInterface, node string) (string, error) {
	cl, err := apiv1.NewWorkflowServiceClient(cc).GetCluster(ctx, &apiv1.GetClusterRequest{})
	if err != nil {
		return "", err
	}
	var cps []string
	for _, n := range cl.GetCluster().GetNodes() {
		if n.GetRole() == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
			cps = append(cps, n.GetName())
		}
	}
	if len(cps) == 0 {
		return "", fmt.Errorf("no cluster with a control plane is recorded (deckctl cluster)")
	}
	if node != "" {
		if !slices.Contains(cps, node) {
			return "", fmt.Errorf("--node %s is not a control plane of the cluster (its control planes: %s)", node, strings.Join(cps, ", "))
		}
		return node, nil
	}
	ns, err := listNodes(ctx, cc)
	if err != nil {
		return "", err
	}
	for _, cp := range cps {
		for _, n := range ns {
			if n.GetName() == cp && n.GetState() == apiv1.NodeState_NODE_STATE_READY {
				return cp, nil
			}
		}
	}
	return "", fmt.Errorf("no control plane's agent is connected (%s): deckctl nodes shows them", strings.Join(cps, ", "))
}

// runOn runs a task on node with live output and returns its record.
func (o *options) runOn(node string, spec *taskv1.TaskSpec) (*apiv1.TaskRecord, error) {
	var rec *apiv1.TaskRecord
	if err := o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
		resp, err := apiv1.NewTaskServiceClient(cc).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: node, Spec: spec})
		rec = resp.GetTask()
		return err
	}); err != nil {
		return nil, err
	}
	return o.follow(rec.GetTask().GetId())
}

func newEtcdSnapshotCmd(o *options) *cobra.Command {
	var node, name, save string
	cmd := &cobra.Command{
		Use:   "snapshot [--node CP] [--name NAME] [--save FILE]",
		Short: "Take an etcd snapshot on a control plane, kept there",
		Long: "Takes a snapshot of the cluster's etcd through a control plane's own member (etcd's client API\n" +
			"with kubeadm's health-check certificate) and keeps it on that control plane under\n" +
			"/var/lib/deckhand/etcd-snapshots (0600), with its SHA-256, size and revision; deckctl etcd\n" +
			"snapshots lists them and deckctl etcd restore --from NAME restores one. --save FILE also\n" +
			"streams it here as it is taken (admins only: a snapshot holds every Secret of the cluster),\n" +
			"written 0600 and checked against its SHA-256.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if save != "" {
				return o.saveSnapshot(node, name, save)
			}
			if name == "" {
				name = "manual-" + strings.ToLower(time.Now().UTC().Format("20060102t150405"))
			}
			err := o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				var err error
				node, err = pickControlPlane(ctx, cc, node)
				return err
			})
			if err != nil {
				return err
			}
			rec, err := o.runOn(node, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_EtcdSnapshot{EtcdSnapshot: &taskv1.EtcdSnapshotSpec{Name: name}}})
			if err != nil {
				return err
			}
			out := rec.GetResult().GetOutputs()
			fmt.Fprintf(o.out, "snapshot %s on %s: %s bytes, revision %s, SHA-256 %s\n", out["name"], node, out["size"], out["revision"], strings.TrimPrefix(out["sha256"], "sha256:"))
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the control plane to take and keep it (default: the first connected one)")
	cmd.Flags().StringVar(&name, "name", "", "its name, 1-63 of a-z, 0-9 and - (default: manual-TIMESTAMP, or saved-TIMESTAMP with --save)")
	cmd.Flags().StringVar(&save, "save", "", "also write it to this file here (0600; refused if it exists)")
	return cmd
}

// saveSnapshot takes a snapshot and writes the stream of it to file: FILE.part first,
// renamed once its SHA-256 is the one the control plane recorded.
func (o *options) saveSnapshot(node, name, file string) error {
	if _, err := os.Lstat(file); err == nil {
		return fmt.Errorf("--save %s: the file exists; give a new name", file)
	}
	part := file + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--save: %w", err)
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			os.Remove(part)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, o.timeout)
	cc, err := o.dial(dctx)
	dcancel()
	if err != nil {
		return err
	}
	defer cc.Close()
	stream, err := apiv1.NewWorkflowServiceClient(cc).SaveEtcdSnapshot(ctx, &apiv1.SaveEtcdSnapshotRequest{Node: node, Name: name})
	if err != nil {
		return err
	}
	sum := sha256.New()
	var n uint64
	start := time.Now()
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if d := m.GetData(); d != nil {
			if _, err := f.Write(d); err != nil {
				return err
			}
			sum.Write(d)
			n += uint64(len(d))
			continue
		}
		done := m.GetDone()
		if done == nil {
			continue
		}
		got := hex.EncodeToString(sum.Sum(nil))
		if got != done.GetSha256() || n != done.GetSize() {
			return fmt.Errorf("the snapshot arrived damaged: %d bytes with SHA-256 %s, %d bytes with %s on %s", n, got, done.GetSize(), done.GetSha256(), done.GetNode())
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := os.Rename(part, file); err != nil {
			return err
		}
		ok = true
		fmt.Fprintf(o.out, "snapshot %s taken on %s (kept there too), saved to %s: %d bytes, revision %d, SHA-256 %s, in %v\n",
			done.GetName(), done.GetNode(), file, n, done.GetRevision(), got, time.Since(start).Round(100*time.Millisecond))
		return nil
	}
}

func newEtcdSnapshotsCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "snapshots",
		Short: "List the etcd snapshots the control planes keep",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				ns, err := listNodes(ctx, cc)
				if err != nil {
					return err
				}
				type row struct {
					Node     string    `json:"node"`
					Name     string    `json:"name"`
					Taken    time.Time `json:"taken"`
					Size     uint64    `json:"size"`
					Recorded uint64    `json:"recordedSize"`
					Revision int64     `json:"revision"`
					SHA256   string    `json:"sha256"`
					Damaged  bool      `json:"damaged"`
				}
				var rows []row
				for _, n := range ns {
					for _, s := range n.GetFacts().GetEtcdSnapshots() {
						rows = append(rows, row{Node: n.GetName(), Name: s.GetName(), Taken: s.GetTaken().AsTime(), Size: s.GetSize(), Recorded: s.GetRecordedSize(),
							Revision: s.GetRevision(), SHA256: s.GetSha256(), Damaged: s.GetSize() != s.GetRecordedSize()})
					}
				}
				slices.SortStableFunc(rows, func(a, b row) int { return b.Taken.Compare(a.Taken) })
				if done, err := o.printValue(map[string]any{"snapshots": rows}); done {
					return err
				}
				if len(rows) == 0 {
					fmt.Fprintln(o.out, "No etcd snapshots: deckctl etcd snapshot takes one; spec.etcd.backup takes them on a schedule.")
					return nil
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tNAME\tTAKEN\tSIZE\tREVISION\tSHA-256")
				for _, r := range rows {
					size := fmt.Sprint(r.Size)
					if r.Damaged {
						size = fmt.Sprintf("%d (DAMAGED: %d when taken)", r.Size, r.Recorded)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.Node, r.Name, r.Taken.Local().Format(time.RFC3339), size, r.Revision, r.SHA256)
				}
				return tw.Flush()
			})
		},
	}
}

func newEtcdMembersCmd(o *options) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "members [--node CP]",
		Short: "List the etcd members through a control plane, and check each is healthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				var err error
				node, err = pickControlPlane(ctx, cc, node)
				return err
			})
			if err != nil {
				return err
			}
			rec, err := o.runOn(node, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_EtcdMembers{EtcdMembers: &taskv1.EtcdMembersSpec{}}})
			if err != nil {
				return err
			}
			members := rec.GetResult().GetOutputs()["members"]
			health, err := o.runOn(node, &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_ClusterHealth{ClusterHealth: &taskv1.ClusterHealthSpec{}}})
			if err != nil {
				return fmt.Errorf("etcd members %s; the health check failed: %w", members, err)
			}
			fmt.Fprintf(o.out, "etcd members (through %s): %s; %s healthy\n", node, strings.ReplaceAll(members, ",", ", "), health.GetResult().GetOutputs()["members"])
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the control plane to ask (default: the first connected one)")
	return cmd
}

func newEtcdRestoreCmd(o *options) *cobra.Command {
	var from, node string
	var force bool
	var f wfFlags
	cmd := &cobra.Command{
		Use:   "restore --from SNAPSHOT [--node CP] [--force]",
		Short: "Replace the cluster's etcd with a snapshot a control plane keeps",
		Long: "Restores the cluster's etcd from a snapshot deckctl etcd snapshots lists: its SHA-256 is checked\n" +
			"first and the cluster's health (a healthy cluster is refused without --force), then every\n" +
			"control plane's API server, controller manager, scheduler and etcd are stopped, etcd is\n" +
			"restored on the control plane holding the snapshot (a new data directory and cluster ID; the\n" +
			"old data is kept as /var/lib/etcd/member.before-RESTORE-ID), started, and the other control\n" +
			"planes' etcd join it one by one as new members. Everything written after the snapshot is lost.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return fmt.Errorf("--from: give the snapshot's name, as deckctl etcd snapshots lists it")
			}
			spec := &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_EtcdRestore{EtcdRestore: &apiv1.EtcdRestoreWorkflow{Snapshot: from, Node: node, Force: force}}, DryRun: f.dryRun}
			return o.runWorkflow(spec, f)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the snapshot's name")
	cmd.Flags().StringVar(&node, "node", "", "the control plane holding it (when several keep one by that name)")
	cmd.Flags().BoolVar(&force, "force", false, "restore even though the cluster is healthy")
	f.add(cmd)
	return cmd
}
