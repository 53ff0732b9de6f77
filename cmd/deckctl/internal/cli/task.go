package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/internal/podnet"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// taskFlags are the flags of deckctl task run, for every kind.
type taskFlags struct {
	dryRun, detach    bool
	id                string
	kubernetesVersion string
	imageRepository   string
	mirrors           []string
	insecure          []string
	source            string
	cgroupDriver      string
	containerdTarball string
	// runtime on a dnf host: containerd.io's repository and version
	repoURL, gpgKeyURL, gpgKeyFingerprint, containerdVersion string
	downloadOnly                                             bool
	action                                                   string
	images                                                   []string
	networkProvider                                          string
	networkVersion                                           string
	archive                                                  string
	pullTimeout                                              time.Duration
	pkgSource                                                string
	baseURL                                                  string
	noHold                                                   bool
	save                                                     string
	role                                                     string
	fix                                                      bool
	ignore                                                   []string
	// fan-out
	nodes       string
	concurrency int
	runTimeout  time.Duration
}

func (f *taskFlags) registry() *taskv1.RegistrySettings {
	return &taskv1.RegistrySettings{ImageRepository: f.imageRepository, Mirrors: f.mirrors, InsecureRegistries: f.insecure}
}

// spec builds the typed task spec for kind from the flags.
func (f *taskFlags) spec(kind string) (*taskv1.TaskSpec, error) {
	switch kind {
	case "runtime":
		src := taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE
		switch f.source {
		case "package":
		case "tarball":
			src = taskv1.RuntimeSource_RUNTIME_SOURCE_TARBALL
		default:
			return nil, fmt.Errorf("--source %q: use package or tarball", f.source)
		}
		rt := &taskv1.RuntimeSpec{
			Source: src, ContainerdTarball: f.containerdTarball, KubernetesVersion: f.kubernetesVersion, Registry: f.registry(), CgroupDriver: f.cgroupDriver,
			ContainerdVersion: f.containerdVersion,
		}
		if f.repoURL != "" || f.gpgKeyURL != "" || f.gpgKeyFingerprint != "" {
			rt.Repository = &taskv1.RuntimeRepository{BaseUrl: f.repoURL, GpgKeyUrl: f.gpgKeyURL, GpgKeyFingerprint: f.gpgKeyFingerprint}
		}
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Runtime{Runtime: rt}}, nil
	case "images":
		actions := map[string]taskv1.ImagesAction{"pull": taskv1.ImagesAction_IMAGES_ACTION_PULL, "list": taskv1.ImagesAction_IMAGES_ACTION_LIST,
			"remove": taskv1.ImagesAction_IMAGES_ACTION_REMOVE, "export": taskv1.ImagesAction_IMAGES_ACTION_EXPORT, "import": taskv1.ImagesAction_IMAGES_ACTION_IMPORT}
		a, ok := actions[f.action]
		if !ok {
			return nil, fmt.Errorf("--action %q: use pull, list, remove, export or import", f.action)
		}
		var extra []string
		if f.networkProvider != "" && len(f.images) > 0 {
			return nil, fmt.Errorf("--network-provider adds to the control-plane images, which --image replaces: give the provider's images with --image too, or leave --image out")
		}
		if f.networkProvider != "" {
			prov, ok := podnet.Lookup(f.networkProvider)
			if !ok {
				return nil, fmt.Errorf("--network-provider %q: use %s", f.networkProvider, strings.Join(podnet.Providers, ", "))
			}
			if prov.FromDocument {
				return nil, fmt.Errorf("--network-provider %s: its images are your manifest's: give them with --image (with the control-plane images)", prov.Name)
			}
			extra = prov.ImagesAt(f.networkVersion, f.imageRepository)
		}
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Images{Images: &taskv1.ImagesSpec{
			Action: a, Images: f.images, KubernetesVersion: f.kubernetesVersion, Registry: f.registry(), PullTimeout: durationpb.New(f.pullTimeout), ArchivePath: f.archive,
			ExtraImages: extra,
		}}}, nil
	case "packages":
		src := taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY
		switch f.pkgSource {
		case "repository":
		case "binaries":
			src = taskv1.PackageSource_PACKAGE_SOURCE_BINARIES
		default:
			return nil, fmt.Errorf("--package-source %q: use repository or binaries", f.pkgSource)
		}
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Packages{Packages: &taskv1.PackagesSpec{KubernetesVersion: f.kubernetesVersion, Source: src, BaseUrl: f.baseURL, Hold: !f.noHold,
			DownloadOnly: f.downloadOnly}}}, nil
	case "preflight":
		role := map[string]taskv1.NodeRole{"worker": taskv1.NodeRole_NODE_ROLE_WORKER, "control-plane": taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE}[f.role]
		if role == taskv1.NodeRole_NODE_ROLE_UNSPECIFIED {
			return nil, fmt.Errorf("--role %q: use worker or control-plane", f.role)
		}
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Preflight{Preflight: &taskv1.PreflightSpec{Role: role, Fix: f.fix, Ignore: f.ignore}}}, nil
	case "diagnostics":
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Diagnostics{Diagnostics: &taskv1.DiagnosticsSpec{}}}, nil
	case "ping":
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Ping{Ping: &taskv1.PingSpec{}}}, nil
	case "facts":
		return &taskv1.TaskSpec{Kind: &taskv1.TaskSpec_Facts{Facts: &taskv1.FactsSpec{}}}, nil
	}
	return nil, fmt.Errorf("unknown task kind %q: use preflight, packages, runtime, images, diagnostics, ping or facts", kind)
}

func newTaskCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Run one task on one node, and read tasks back"}
	f := &taskFlags{}
	run := &cobra.Command{
		Use:   "run NODE KIND | run --nodes SELECTOR KIND",
		Short: "Run a task (preflight, runtime, images, ping, ...) on a node, or on many nodes at once, with live output",
		Long: `Run a task on one node and follow its log, or with --nodes on many nodes at once:
--nodes all, --nodes role=worker,os=debian (keys: role, os, arch, state) or
--nodes node-1,node-2. At most --concurrency nodes run at once; the live line shows
how many ended, failed and run, with the median and 99th percentile task time; every
node's result is printed at the end, the failed last, and the exit status is 1 when
one failed. Nodes that are not ready are reported, not waited for. The same command
with the same --id resumes a run that was interrupted.`,
		Example: `  deckctl task run node-1 preflight --role control-plane
  deckctl task run --nodes all ping
  deckctl task run --nodes role=worker --concurrency 20 facts`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.nodes != "" {
				if len(args) != 1 {
					return fmt.Errorf("with --nodes give only the task kind: deckctl task run --nodes %s KIND", f.nodes)
				}
				return nil
			}
			if len(args) != 2 {
				return fmt.Errorf("give a node and a task kind (deckctl task run node-1 ping), or --nodes and a kind (deckctl task run --nodes all ping)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.nodes != "" {
				sel, err := parseSelector(f.nodes)
				if err != nil {
					return err
				}
				if f.save != "" || f.detach {
					return fmt.Errorf("--save and --detach are for one node; with --nodes every node's result is printed (use -o json for all of it)")
				}
				spec, err := f.spec(args[0])
				if err != nil {
					return err
				}
				return o.runMany(sel, args[0], spec, f)
			}
			if cmd.Flags().Changed("concurrency") || cmd.Flags().Changed("run-timeout") {
				return fmt.Errorf("--concurrency and --run-timeout are for --nodes")
			}
			spec, err := f.spec(args[1])
			if err != nil {
				return err
			}
			var rec *apiv1.TaskRecord
			err = o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewTaskServiceClient(cc).CreateTask(ctx, &apiv1.CreateTaskRequest{Node: args[0], Spec: spec, DryRun: f.dryRun, Id: f.id})
				rec = resp.GetTask()
				return err
			})
			if err != nil {
				return err
			}
			if f.detach {
				if done, err := o.printStructured(rec); done {
					return err
				}
				fmt.Fprintln(o.out, rec.GetTask().GetId())
				return nil
			}
			last, err := o.follow(rec.GetTask().GetId())
			if f.save != "" && last != nil {
				// The watch carries the artifact's size only; fetch it by ID.
				if serr := o.saveTaskArtifact(last.GetTask().GetId(), f.save); serr != nil && err == nil {
					err = serr
				}
			}
			return err
		},
	}
	fl := run.Flags()
	fl.StringVar(&f.nodes, "nodes", "", "run on many nodes: all, KEY=VALUE[,KEY=VALUE] (role, os, arch, state) or names separated by commas")
	fl.IntVar(&f.concurrency, "concurrency", 0, "with --nodes: most nodes whose tasks run at once (default 100, at most 1000)")
	fl.DurationVar(&f.runTimeout, "run-timeout", 0, "with --nodes: cancel what still runs after this long and report it failed (default 10m)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "report the changes the task would make and make none")
	fl.BoolVar(&f.detach, "detach", false, "print the task ID and return")
	fl.StringVar(&f.save, "save", "", "write the task's artifact (for example the diagnostics tar.gz) to this file")
	fl.StringVar(&f.id, "id", "", "task ID (default: generated); an ID is used once: the same task again returns the recorded one, another task under it is refused; IDs starting with wf- belong to workflow steps. With --nodes: the run ID (at most 64, no dots); the same command with it resumes the run")
	fl.StringVar(&f.kubernetesVersion, "kubernetes-version", "v1.33.13", "Kubernetes version (runtime, images)")
	fl.StringVar(&f.imageRepository, "image-repository", "registry.k8s.io", "repository of the control-plane and pause images")
	fl.StringSliceVar(&f.mirrors, "mirror", nil, "registry mirror URL, tried in order (repeatable)")
	fl.StringSliceVar(&f.insecure, "insecure-registry", nil, "registry host[:port] reached without TLS verification (repeatable)")
	fl.StringVar(&f.source, "source", "package", "runtime: package or tarball")
	fl.StringVar(&f.cgroupDriver, "cgroup-driver", "", "runtime: systemd or cgroupfs, matching the kubelet (default: the host's: systemd when systemd is its init, else cgroupfs)")
	fl.StringVar(&f.containerdTarball, "containerd-tarball", "", "runtime: containerd release tarball (URL or path on the node)")
	fl.StringVar(&f.action, "action", "pull", "images: pull, list, remove, export or import")
	fl.StringSliceVar(&f.images, "image", nil, "images: explicit image (repeatable; default: the control-plane images)")
	fl.StringVar(&f.archive, "archive", "", "images: tarball path on the node for export and import")
	fl.StringVar(&f.networkProvider, "network-provider", "", "images: add this pod network provider's images (flannel, calico, cilium) to the control-plane images, for pull and export")
	fl.StringVar(&f.networkVersion, "network-provider-version", "", "images: the provider's version, as deckctl cluster shows it for an existing cluster (default: the one this deckctl installs in a new cluster)")
	fl.DurationVar(&f.pullTimeout, "pull-timeout", 2*time.Minute, "images: per-image pull timeout before the next mirror")
	fl.StringVar(&f.pkgSource, "package-source", "repository", "packages: repository (pkgs.k8s.io or --base-url mirror) or binaries (--base-url)")
	fl.StringVar(&f.baseURL, "base-url", "", "packages: repository mirror or binary base URL")
	fl.BoolVar(&f.noHold, "no-hold", false, "packages: do not hold the packages back from upgrades")
	fl.BoolVar(&f.downloadOnly, "download-only", false, "packages: download the version into the package manager's cache (or stage the binaries), install nothing")
	fl.StringVar(&f.repoURL, "repository-url", "", "runtime on a dnf host: containerd.io's repository (a mirror of Docker's); default Docker's")
	fl.StringVar(&f.gpgKeyURL, "gpg-key-url", "", "runtime on a dnf host: the repository's signing key")
	fl.StringVar(&f.gpgKeyFingerprint, "gpg-key-fingerprint", "", "runtime on a dnf host: the fingerprint the key must have (40 hex digits)")
	fl.StringVar(&f.containerdVersion, "containerd-version", "", "runtime on a dnf host: the containerd.io version (default the newest)")
	fl.StringVar(&f.role, "role", "worker", "preflight: worker or control-plane")
	fl.BoolVar(&f.fix, "fix", false, "preflight: fix every fixable item")
	fl.StringSliceVar(&f.ignore, "ignore", nil, "preflight: check names whose failure does not fail the task (repeatable)")
	cmd.AddCommand(run)

	var getSave string
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a task's state, changes and outputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewTaskServiceClient(cc).GetTask(ctx, &apiv1.GetTaskRequest{Id: args[0], IncludeArtifact: getSave != ""}, artifactCall)
				if err != nil {
					return err
				}
				if err := saveArtifact(o, resp.GetTask(), getSave); err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				printTask(o.out, resp.GetTask())
				return nil
			})
		},
	}
	get.Flags().StringVar(&getSave, "save", "", "write the task's artifact (for example a diagnostics tar.gz) to this file")
	cmd.AddCommand(get)
	cmd.AddCommand(&cobra.Command{
		Use:   "logs ID",
		Short: "Print a task's log",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp := &apiv1.GetTaskLogsResponse{}
				err := allPages(func(token string) (string, error) {
					page, err := apiv1.NewTaskServiceClient(cc).GetTaskLogs(ctx, &apiv1.GetTaskLogsRequest{Id: args[0], PageToken: token})
					resp.Events = append(resp.Events, page.GetEvents()...)
					return page.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				for _, ev := range resp.GetEvents() {
					printEvent(o.out, ev)
				}
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task that has not finished",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewTaskServiceClient(cc).CancelTask(ctx, &apiv1.CancelTaskRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				fmt.Fprintf(o.out, "task %s: %s\n", args[0], taskState(resp.GetTask().GetState()))
				return nil
			})
		},
	})
	var node string
	list := &cobra.Command{
		Use:   "list",
		Short: "List tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp := &apiv1.ListTasksResponse{}
				err := allPages(func(token string) (string, error) {
					page, err := apiv1.NewTaskServiceClient(cc).ListTasks(ctx, &apiv1.ListTasksRequest{Node: node, PageToken: token})
					resp.Tasks = append(resp.Tasks, page.GetTasks()...)
					return page.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				newestFirst(resp.Tasks)
				if done, err := o.printStructured(resp); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNODE\tKIND\tSTATE\tAGE\tCHANGES")
				for _, r := range resp.GetTasks() {
					kind := strings.TrimPrefix(fmt.Sprintf("%T", r.GetTask().GetSpec().GetKind()), "*taskv1.TaskSpec_")
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.GetTask().GetId(), r.GetTask().GetNode(), strings.ToLower(kind), taskState(r.GetState()), age(r.GetCreated().AsTime()), len(r.GetResult().GetChanges()))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&node, "node", "", "only this node's tasks")
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use:   "artifact ID FILE",
		Short: "Save a task's artifact (for example a diagnostics tar.gz) to FILE",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.saveTaskArtifact(args[0], args[1]); err != nil {
				return err
			}
			if done, err := o.printValue(actionResult{Kind: "task", Name: args[0], Action: "artifact saved",
				Message: fmt.Sprintf("saved the artifact of task %s to %s", args[0], args[1])}); done {
				return err
			}
			return nil
		},
	})
	return cmd
}

// newestFirst orders tasks as deckctl lists them: the newest first (by creation, then ID).
func newestFirst(tasks []*apiv1.TaskRecord) {
	slices.SortStableFunc(tasks, func(a, b *apiv1.TaskRecord) int {
		if c := b.GetCreated().AsTime().Compare(a.GetCreated().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(b.GetTask().GetId(), a.GetTask().GetId())
	})
}

// allPages calls list with each page's token, starting with none, until a page has no next
// token.
func allPages(list func(token string) (next string, err error)) error {
	token := ""
	for {
		next, err := list(token)
		if err != nil || next == "" {
			return err
		}
		if next == token {
			return fmt.Errorf("the controller returned the same page token twice: try again")
		}
		token = next
	}
}

// artifactCall lets a task with its artifact (at most a few MiB, bounded by the controller)
// and a full record beside it through, above gRPC's default 4 MiB.
var artifactCall = grpc.MaxCallRecvMsgSize(16 << 20)

// saveTaskArtifact fetches task id with its artifact and writes the artifact to path.
func (o *options) saveTaskArtifact(id, path string) error {
	return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
		resp, err := apiv1.NewTaskServiceClient(cc).GetTask(ctx, &apiv1.GetTaskRequest{Id: id, IncludeArtifact: true}, artifactCall)
		if err != nil {
			return err
		}
		return saveArtifact(o, resp.GetTask(), path)
	})
}

// saveArtifact writes a task's artifact to path (when path is set).
func saveArtifact(o *options, rec *apiv1.TaskRecord, path string) error {
	if path == "" || rec == nil {
		return nil
	}
	data := rec.GetResult().GetArtifact()
	if len(data) == 0 {
		return fmt.Errorf("task %s has no artifact to save", rec.GetTask().GetId())
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(o.errOut, "saved %d bytes to %s\n", len(data), path)
	return nil
}

// follow streams a task's events until it ends, then prints the outcome. A failed task is
// an error (exit 1).
func (o *options) follow(id string) (*apiv1.TaskRecord, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, o.timeout)
	cc, err := o.dial(dctx)
	dcancel()
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	fmt.Fprintf(o.errOut, "task %s\n", id)
	// Through another controller when this one goes away, each log line once.
	last, err := cc.WatchTask(ctx, id, func(ev *taskv1.TaskEvent) { printEvent(o.errOut, ev) },
		func(error) { fmt.Fprintln(o.errOut, "reconnecting to a controller…") })
	if err != nil {
		return nil, describe(err)
	}
	if last == nil {
		return nil, fmt.Errorf("task %s: the stream ended without a state", id)
	}
	if done, err := o.printStructured(last); done {
		return last, err
	}
	printTask(o.out, last)
	if last.GetState() != taskv1.TaskState_TASK_STATE_SUCCEEDED {
		return last, fmt.Errorf("task %s %s", id, taskState(last.GetState()))
	}
	return last, nil
}

func taskState(s taskv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

func printEvent(w io.Writer, ev *taskv1.TaskEvent) {
	ts := ev.GetTime().AsTime().Local().Format("15:04:05")
	switch {
	case ev.GetLog() != nil:
		fmt.Fprintf(w, "%s %-6s %s\n", ts, ev.GetLog().GetStream(), ev.GetLog().GetText())
	case ev.GetProgress() != nil:
		p := ev.GetProgress()
		if p.GetTotal() > 0 {
			fmt.Fprintf(w, "%s %-6s %s %s/%s %s\n", ts, "", p.GetItem(), human(p.GetDone(), p.GetUnit()), human(p.GetTotal(), p.GetUnit()), "")
		} else {
			fmt.Fprintf(w, "%s %-6s %s %s\n", ts, "", p.GetItem(), human(p.GetDone(), p.GetUnit()))
		}
	}
}

func human(n uint64, unit string) string {
	if unit != "bytes" {
		return fmt.Sprintf("%d %s", n, unit)
	}
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func printTask(w io.Writer, r *apiv1.TaskRecord) {
	res := r.GetResult()
	dry := ""
	if r.GetTask().GetDryRun() {
		dry = " (dry-run)"
	}
	fmt.Fprintf(w, "task %s on %s: %s%s\n", r.GetTask().GetId(), r.GetTask().GetNode(), taskState(r.GetState()), dry)
	if res.GetReplayed() {
		fmt.Fprintln(w, "  (the agent had already run this task; this is its recorded result)")
	}
	if Terminal(r.GetState()) {
		if len(res.GetChanges()) == 0 {
			fmt.Fprintln(w, "  no changes")
		}
		verb := "changed"
		if r.GetTask().GetDryRun() {
			verb = "would change"
		}
		for _, c := range res.GetChanges() {
			fmt.Fprintf(w, "  %s %s %s", verb, c.GetKind(), c.GetTarget())
			if d := c.GetDetail(); d != "" && !strings.Contains(d, "\n") {
				fmt.Fprintf(w, ": %s", d)
			}
			fmt.Fprintln(w)
			if d := c.GetDetail(); strings.Contains(d, "\n") {
				for _, l := range strings.Split(d, "\n") {
					fmt.Fprintf(w, "      %s\n", l)
				}
			}
		}
	}
	keys := make([]string, 0, len(res.GetOutputs()))
	for k := range res.GetOutputs() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, res.GetOutputs()[k])
	}
	if e := res.GetError(); e != nil {
		fmt.Fprintf(w, "  error (%s): %s\n", e.GetReason(), e.GetMessage())
		if e.GetHint() != "" {
			fmt.Fprintf(w, "  hint: %s\n", e.GetHint())
		}
	}
}

// Terminal mirrors the controller's notion of a finished task.
func Terminal(s taskv1.TaskState) bool {
	return s == taskv1.TaskState_TASK_STATE_SUCCEEDED || s == taskv1.TaskState_TASK_STATE_FAILED || s == taskv1.TaskState_TASK_STATE_CANCELLED
}
