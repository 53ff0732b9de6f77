package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/deckhandhq/deckhand/client"
	"github.com/deckhandhq/deckhand/internal/podnet"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// wfFlags are shared by the workflow commands.
type wfFlags struct {
	dryRun, detach bool
}

func (f *wfFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "run every task as a dry-run and show the changes per host")
	cmd.Flags().BoolVar(&f.detach, "detach", false, "print the workflow ID and return instead of showing progress")
}

func newWorkflowCmds(o *options) []*cobra.Command {
	return []*cobra.Command{newInitCmd(o), newJoinCmd(o), newResetCmd(o), newApplyCmd(o), newPlanCmd(o), newUpgradeCmd(o),
		newWorkflowsCmd(o), newWorkflowCmd(o), newLogsCmd(o), newClusterCmd(o)}
}

// providerHelp lists the pod network providers with what each is.
func providerHelp() string {
	var out []string
	for _, name := range podnet.Providers {
		out = append(out, name+" ("+podnet.MustLookup(name).Summary+")")
	}
	return strings.Join(out, "; ")
}

func newInitCmd(o *options) *cobra.Command {
	var f wfFlags
	var tf taskFlags
	var endpoint, podSubnet, serviceSubnet, clusterName, proxyMode, networkProvider, address string
	var lb taskv1.LoadBalancerSettings
	var nm taskv1.NetworkManifest
	var conntrackMaxPerCore int32
	var certSANs []string
	var nf nodeFlags
	cmd := &cobra.Command{
		Use:   "init NODE",
		Short: "Create a Kubernetes cluster with NODE as its first control plane",
		Long: "Prepares NODE (preflight with fixes, packages, container runtime, images), runs kubeadm init,\n" +
			"waits until the control plane is healthy, installs the pod network on NODE and records the\n" +
			"cluster for later joins.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pkg, err := tf.spec("packages")
			if err != nil {
				return err
			}
			rt, err := tf.spec("runtime")
			if err != nil {
				return err
			}
			cluster := &taskv1.ClusterSpec{KubernetesVersion: tf.kubernetesVersion, ControlPlaneEndpoint: endpoint, PodSubnet: podSubnet,
				ServiceSubnet: serviceSubnet, Registry: tf.registry(), ClusterName: clusterName, CgroupDriver: tf.cgroupDriver,
				NetworkProvider: networkProvider, ApiServerCertSans: certSANs}
			if lb.Type != "" || lb.Address != "" || lb.Port != 0 || lb.Interface != "" || lb.VirtualRouterId != 0 {
				cluster.LoadBalancer = &lb
			}
			if nm.Location != "" || nm.Sha256 != "" || len(nm.Images) > 0 || len(nm.Ports) > 0 {
				cluster.NetworkManifest = &nm
			}
			if conntrack := cmd.Flags().Changed("conntrack-max-per-core"); proxyMode != "" || conntrack {
				cluster.KubeProxy = &taskv1.KubeProxySettings{Mode: proxyMode}
				if conntrack {
					cluster.KubeProxy.ConntrackMaxPerCore = &conntrackMaxPerCore
				}
			}
			opts, err := nf.options()
			if err != nil {
				return err
			}
			spec := &apiv1.WorkflowSpec{DryRun: f.dryRun, Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{
				Node: args[0], Cluster: cluster, Packages: pkg.GetPackages(), Runtime: rt.GetRuntime(), Address: address, Options: opts,
			}}}
			return o.runWorkflow(spec, f)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&tf.kubernetesVersion, "kubernetes-version", "", "Kubernetes release, for example v1.33.13 (required)")
	fl.StringVar(&address, "address", "", addressHelp)
	nf.add(fl)
	fl.StringSliceVar(&certSANs, "apiserver-cert-extra-sans", nil, "extra names of the API server's certificate: IP addresses or DNS names, *.example.com too (repeatable or comma-separated)")
	fl.StringVar(&endpoint, "control-plane-endpoint", "", "host:port of your API server load balancer (--load-balancer external); more than one control plane needs an endpoint")
	fl.StringVar(&lb.Type, "load-balancer", "", "the API servers' load balancer Deckhand installs and keeps: vip (haproxy and keepalived on the control planes, a virtual IP), local (haproxy on 127.0.0.1 on every node) or external (yours: --control-plane-endpoint)")
	fl.StringVar(&lb.Address, "load-balancer-address", "", "--load-balancer vip: the virtual IP, an unused address on the control planes' network")
	fl.Uint32Var(&lb.Port, "load-balancer-port", 0, "the port the load balancer listens on (default 8443 for vip, 7443 for local)")
	fl.StringVar(&lb.Interface, "load-balancer-interface", "", "--load-balancer vip: the interface VRRP runs on (default: the one holding the node's address)")
	fl.Uint32Var(&lb.VirtualRouterId, "virtual-router-id", 0, "--load-balancer vip: the VRRP virtual router ID, 1..255, unique on the network (default 51)")
	fl.StringVar(&podSubnet, "pod-subnet", "", "pod network CIDR; each node gets a /24 of it (default 10.244.0.0/16)")
	fl.StringVar(&networkProvider, "network-provider", "bridge", "pod network Deckhand installs: "+providerHelp())
	fl.StringVar(&nm.Location, "network-manifest", "", "--network-provider manifest: your CNI manifest, an https URL or a path on NODE")
	fl.StringVar(&nm.Sha256, "network-manifest-sha256", "", "--network-provider manifest: the manifest's SHA-256 (required)")
	fl.StringSliceVar(&nm.Images, "network-manifest-image", nil, "--network-provider manifest: an image it runs, pre-pulled on every node (repeatable)")
	fl.StringSliceVar(&nm.Ports, "network-manifest-port", nil, "--network-provider manifest: a port its pods need open between nodes, 179/tcp (repeatable)")
	fl.StringVar(&serviceSubnet, "service-subnet", "", "service CIDR (default 10.96.0.0/12)")
	fl.StringVar(&clusterName, "cluster-name", "", "cluster name in the kubeconfig files (default kubernetes)")
	fl.StringVar(&tf.imageRepository, "image-repository", "", "registry for the control-plane images (default registry.k8s.io)")
	fl.StringSliceVar(&tf.mirrors, "mirror", nil, "registry mirror tried before the image repository (repeatable, in order)")
	fl.StringSliceVar(&tf.insecure, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (repeatable)")
	fl.StringVar(&tf.cgroupDriver, "cgroup-driver", "", "systemd or cgroupfs (default: the first control plane's: systemd when systemd is its init, else cgroupfs)")
	fl.StringVar(&proxyMode, "kube-proxy-mode", "", "kube-proxy mode: iptables, ipvs or nftables (default: kube-proxy's, iptables)")
	fl.Int32Var(&conntrackMaxPerCore, "conntrack-max-per-core", 0, "kube-proxy's conntrack.maxPerCore; 0 leaves nf_conntrack_max alone, as a container or LXC host needs (default: kube-proxy's, 32768)")
	fl.StringVar(&tf.pkgSource, "package-source", "repository", "where kubelet, kubeadm and kubectl come from: repository or binaries")
	fl.StringVar(&tf.baseURL, "package-base-url", "", "package repository or binary base URL (default pkgs.k8s.io)")
	fl.StringVar(&tf.source, "runtime-source", "package", "how containerd is installed: package or tarball")
	fl.StringVar(&tf.containerdTarball, "containerd-tarball", "", "containerd release tarball (URL or path on the node) for --runtime-source tarball")
	return cmd
}

// addressHelp describes --address of init and join.
const addressHelp = "the node's address in the cluster: the API server advertises it, the kubelet registers it (node-ip), /etc/hosts maps the node's name to it; one of the host's addresses (deckctl node describe NODE lists them) (default: the node's address on the route to its controller)"

func newJoinCmd(o *options) *cobra.Command {
	var f wfFlags
	var cp bool
	var address string
	var nf nodeFlags
	cmd := &cobra.Command{
		Use:   "join NODE",
		Short: "Prepare NODE and join it to the cluster",
		Long: "Prepares NODE (preflight with fixes, packages, runtime, the cluster's images), mints a join token\n" +
			"just in time on a healthy control plane, runs kubeadm join, waits until the node is Ready and\n" +
			"deletes the token.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := nf.options()
			if err != nil {
				return err
			}
			return o.runWorkflow(&apiv1.WorkflowSpec{DryRun: f.dryRun, Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: args[0], ControlPlane: cp, Address: address, Options: opts}}}, f)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&cp, "control-plane", false, "join as a control-plane node (the cluster needs a control-plane endpoint)")
	cmd.Flags().StringVar(&address, "address", "", addressHelp)
	nf.add(cmd.Flags())
	return cmd
}

func newResetCmd(o *options) *cobra.Command {
	var f wfFlags
	var force bool
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "reset NODE",
		Short: "Drain NODE, remove it from the cluster and reset it",
		Long: "Cordons and drains NODE through a control-plane node (stopping on a drain failure unless --force),\n" +
			"runs kubeadm reset (which removes a control plane's etcd member while its Node still exists) and\n" +
			"cleans what kubeadm leaves behind; for a control plane, checks through a remaining control plane's\n" +
			"etcd that its member is gone (removing it if kubeadm reset could not); then deletes the Node object.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if drain < 0 || drain > 24*time.Hour {
				return fmt.Errorf("--drain-timeout %v: give 1s..24h", drain)
			}
			return o.runWorkflow(&apiv1.WorkflowSpec{DryRun: f.dryRun, Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{
				Node: args[0], DrainTimeout: durationpb.New(drain), Force: force}}}, f)
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&drain, "drain-timeout", 5*time.Minute, "how long the drain may take")
	cmd.Flags().BoolVar(&force, "force", false, "go on when the drain fails, and drain pods no controller manages")
	return cmd
}

func readDoc(file string) ([]byte, error) {
	if file == "" {
		return nil, errors.New("-f is required: the cluster document (see deploy/lab/cluster.yaml)")
	}
	if file == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(file)
}

func newApplyCmd(o *options) *cobra.Command {
	var f wfFlags
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f cluster.yaml",
		Short: "Make the cluster match a declarative document",
		Long: "Creates the cluster if there is none, then joins every listed node that is not in it: control\n" +
			"planes one at a time, workers in parallel up to spec.concurrency. Nodes already in the cluster\n" +
			"are not touched. deckctl plan shows what apply would do.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := readDoc(file)
			if err != nil {
				return err
			}
			return o.runWorkflow(&apiv1.WorkflowSpec{DryRun: f.dryRun, Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: doc}}}, f)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&file, "file", "f", "", "cluster document (- for stdin)")
	return cmd
}

func newPlanCmd(o *options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f cluster.yaml",
		Short: "Show what apply would change",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := readDoc(file)
			if err != nil {
				return err
			}
			return o.printPlan(&apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: doc}}}, "No changes: the cluster matches the document.")
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "cluster document (- for stdin)")
	return cmd
}

// printPlan shows what a workflow spec would do (nothing is stored or run); none is said
// when it would change nothing.
func (o *options) printPlan(spec *apiv1.WorkflowSpec, none string) error {
	return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
		resp, err := apiv1.NewWorkflowServiceClient(cc).PlanWorkflow(ctx, &apiv1.PlanWorkflowRequest{Spec: spec})
		if err != nil {
			return err
		}
		if done, err := o.printStructured(resp); done {
			return err
		}
		if len(resp.GetChanges()) == 0 {
			fmt.Fprintln(o.out, none)
		} else {
			fmt.Fprintf(o.out, "Plan: %d change(s), %d step(s) on %d node(s)\n", len(resp.GetChanges()), len(resp.GetWorkflow().GetSteps()), len(resp.GetWorkflow().GetNodes()))
			for _, c := range resp.GetChanges() {
				fmt.Fprintf(o.out, "  + %s\n", c)
			}
			printSteps(o.out, resp.GetWorkflow())
		}
		for _, n := range resp.GetNotes() {
			fmt.Fprintf(o.out, "  note: %s\n", n)
		}
		return nil
	})
}

func newUpgradeCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade the cluster's Kubernetes, node by node",
		Long: "Upgrades the cluster to a release (the cluster's minor or the next): a health check and every\n" +
			"node staged first (packages downloaded, images pulled), then the control planes one at a time\n" +
			"(kubeadm upgrade apply on the first, kubeadm upgrade node on the others), then the workers in\n" +
			"batches of --max-unavailable: cordon, drain, kubeadm upgrade node, kubelet and kubectl, uncordon,\n" +
			"Ready on the release. Nodes at the release already are left alone, so apply again after a\n" +
			"failure or a cancel continues where the cluster is.",
	}
	var u apiv1.UpgradeWorkflow
	var drain time.Duration
	flags := func(c *cobra.Command) {
		c.Flags().StringVar(&u.KubernetesVersion, "to", "", "the release to upgrade to, such as v1.34.12 (required)")
		c.Flags().StringVar(&u.MaxUnavailable, "max-unavailable", "", "workers upgraded at once: N, or P% of them (default 1)")
		c.Flags().BoolVar(&u.Force, "force", false, "upgrade without the nodes whose agents are not connected, and without the health check")
		c.Flags().DurationVar(&drain, "drain-timeout", 0, "how long each node's drain may take (default 5m)")
		c.Flags().StringToStringVar(&u.Sha256, "sha256", nil, "the release's SHA-256 of a binary, NAME=DIGEST (repeatable), for a cluster whose binaries are pinned")
		_ = c.MarkFlagRequired("to")
	}
	spec := func() *apiv1.WorkflowSpec {
		w := proto.Clone(&u).(*apiv1.UpgradeWorkflow)
		if drain > 0 {
			w.DrainTimeout = durationpb.New(drain)
		}
		return &apiv1.WorkflowSpec{Kind: &apiv1.WorkflowSpec_Upgrade{Upgrade: w}}
	}
	plan := &cobra.Command{
		Use:   "plan --to vX.Y.Z",
		Short: "Show what an upgrade would do, and refuse it as apply would",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.printPlan(spec(), "Nothing to upgrade: every node runs "+u.GetKubernetesVersion()+".")
		},
	}
	flags(plan)
	var f wfFlags
	apply := &cobra.Command{
		Use:   "apply --to vX.Y.Z",
		Short: "Upgrade the cluster and show live progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := spec()
			s.DryRun = f.dryRun
			return o.runWorkflow(s, f)
		},
	}
	flags(apply)
	apply.Flags().BoolVar(&u.Paused, "paused", false, "stage every node now and change none until deckctl upgrade resume (a maintenance window)")
	f.add(apply)
	cmd.AddCommand(plan, apply)
	for _, c := range []struct{ use, short string }{
		{"pause", "Let the nodes under way finish their upgrade and start no other"},
		{"resume", "Go on with a paused upgrade"},
		{"cancel", "Stop the upgrade: finished nodes stay upgraded, nodes under way stop where they are, the rest are untouched"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   c.use + " [ID]",
			Short: c.short + " (the running upgrade, or workflow ID)",
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id := ""
				if len(args) == 1 {
					id = args[0]
				} else {
					var err error
					if id, err = o.runningUpgrade(); err != nil {
						return err
					}
				}
				return o.control(id, c.use)
			},
		})
	}
	return cmd
}

func wfState(s apiv1.WorkflowState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WORKFLOW_STATE_"))
}

func stepState(s apiv1.StepState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STEP_STATE_"))
}

// wfKind names a workflow and its subject: "join node-2".
func wfKind(wf *apiv1.Workflow) string {
	s := wf.GetSpec()
	dry := ""
	if s.GetDryRun() {
		dry = " (dry-run)"
	}
	switch k := s.GetKind().(type) {
	case *apiv1.WorkflowSpec_Init:
		return "init " + k.Init.GetNode() + dry
	case *apiv1.WorkflowSpec_Join:
		if k.Join.GetControlPlane() {
			return "join " + k.Join.GetNode() + " --control-plane" + dry
		}
		return "join " + k.Join.GetNode() + dry
	case *apiv1.WorkflowSpec_Reset_:
		return "reset " + k.Reset_.GetNode() + dry
	case *apiv1.WorkflowSpec_Apply:
		return fmt.Sprintf("apply (%s)%s", count(len(wf.GetNodes()), "node", "nodes"), dry)
	case *apiv1.WorkflowSpec_Upgrade:
		return fmt.Sprintf("upgrade to %s (%s)%s", k.Upgrade.GetKubernetesVersion(), count(len(wf.GetNodes()), "node", "nodes"), dry)
	case *apiv1.WorkflowSpec_CertsRenew:
		return fmt.Sprintf("certs renew (%s)%s", count(len(wf.GetNodes()), "control plane", "control planes"), dry)
	case *apiv1.WorkflowSpec_EtcdRestore:
		return fmt.Sprintf("etcd restore from %s (%s)%s", k.EtcdRestore.GetSnapshot(), count(len(wf.GetNodes()), "control plane", "control planes"), dry)
	}
	return "unknown"
}

// count is n with the noun for one or for several.
func count(n int, one, several string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, several)
}

func newWorkflowsCmd(o *options) *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "workflows",
		Short: "List workflows, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st apiv1.WorkflowState
			if state != "" {
				v, ok := apiv1.WorkflowState_value["WORKFLOW_STATE_"+strings.ToUpper(state)]
				if !ok {
					return fmt.Errorf("--state %q: use pending, running, succeeded, failed or cancelled", state)
				}
				st = apiv1.WorkflowState(v)
			}
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp := &apiv1.ListWorkflowsResponse{}
				err := allPages(func(token string) (string, error) {
					page, err := apiv1.NewWorkflowServiceClient(cc).ListWorkflows(ctx, &apiv1.ListWorkflowsRequest{State: st, PageToken: token})
					resp.Workflows = append(resp.Workflows, page.GetWorkflows()...)
					return page.GetNextPageToken(), err
				})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tWHAT\tSTATE\tAGE\tFAILED STEP\tBY")
				for _, wf := range resp.GetWorkflows() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wf.GetId(), wfKind(wf), wfState(wf.GetState()), age(wf.GetCreated().AsTime()), dash(wf.GetFailedStep()), dash(wf.GetCreatedBy()))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only workflows in this state")
	return cmd
}

func newWorkflowCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "workflow", Short: "Describe, watch, retry or cancel a workflow"}
	cmd.AddCommand(&cobra.Command{
		Use:   "describe ID",
		Short: "Show a workflow's steps, their state, outputs and errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewWorkflowServiceClient(cc).GetWorkflow(ctx, &apiv1.GetWorkflowRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				describeWorkflow(o.out, resp.GetWorkflow())
				return nil
			})
		},
	})
	var f wfFlags
	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Resume a failed workflow from its failed step",
		Long: "Resumes a failed or cancelled workflow from the steps that did not succeed (a join token is minted\n" +
			"again). A retried init or join tells a finished node from one a failed run left half done, by the\n" +
			"files kubeadm wrote and what the API server says about the Node: a half-done node is reset with\n" +
			"kubeadm reset (one log line says so) and the step runs again; a finished one is left as it is.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp *apiv1.RetryWorkflowResponse
			err := o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				var err error
				resp, err = apiv1.NewWorkflowServiceClient(cc).RetryWorkflow(ctx, &apiv1.RetryWorkflowRequest{Id: args[0]})
				return err
			})
			if err != nil {
				return err
			}
			if f.detach {
				if done, err := o.printStructured(resp); done {
					return err
				}
				fmt.Fprintln(o.out, args[0])
				return nil
			}
			return o.watchWorkflow(args[0])
		},
	}
	retry.Flags().BoolVar(&f.detach, "detach", false, "return at once instead of showing progress")
	cmd.AddCommand(retry)
	cmd.AddCommand(&cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a running workflow (running tasks are cancelled; its nodes are released)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewWorkflowServiceClient(cc).CancelWorkflow(ctx, &apiv1.CancelWorkflowRequest{Id: args[0]})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				fmt.Fprintf(o.out, "workflow %s: %s\n", args[0], wfState(resp.GetWorkflow().GetState()))
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "pause ID",
		Short: "Let the nodes under way finish and start no other (an upgrade's next batch)",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.control(args[0], "pause") },
	}, &cobra.Command{
		Use:   "resume ID",
		Short: "Go on with a paused workflow",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.control(args[0], "resume") },
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "watch ID",
		Short: "Show a workflow's live progress until it ends",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.watchWorkflow(args[0]) },
	})
	return cmd
}

// control pauses, resumes or cancels workflow id and says what it is now.
func (o *options) control(id, what string) error {
	return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
		c := apiv1.NewWorkflowServiceClient(cc)
		var resp interface{ GetWorkflow() *apiv1.Workflow }
		var err error
		switch what {
		case "pause":
			resp, err = c.PauseWorkflow(ctx, &apiv1.PauseWorkflowRequest{Id: id})
		case "resume":
			resp, err = c.ResumeWorkflow(ctx, &apiv1.ResumeWorkflowRequest{Id: id})
		default:
			resp, err = c.CancelWorkflow(ctx, &apiv1.CancelWorkflowRequest{Id: id})
		}
		if err != nil {
			return err
		}
		if done, err := o.printStructured(resp.(proto.Message)); done {
			return err
		}
		wf := resp.GetWorkflow()
		state := wfState(wf.GetState())
		if wf.GetPaused() {
			state += ", paused: the nodes under way finish, no other starts (deckctl workflow resume " + id + ")"
		}
		fmt.Fprintf(o.out, "workflow %s: %s\n", id, state)
		return nil
	})
}

// runningUpgrade is the ID of the upgrade workflow that has not ended (the newest).
func (o *options) runningUpgrade() (string, error) {
	var id string
	err := o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
		resp, err := apiv1.NewWorkflowServiceClient(cc).ListWorkflows(ctx, &apiv1.ListWorkflowsRequest{State: apiv1.WorkflowState_WORKFLOW_STATE_RUNNING})
		if err != nil {
			return err
		}
		for _, wf := range resp.GetWorkflows() {
			if wf.GetSpec().GetUpgrade() != nil {
				id = wf.GetId()
				return nil
			}
		}
		return fmt.Errorf("no upgrade is running (deckctl workflows lists them): give the workflow ID")
	})
	return id, err
}

func newLogsCmd(o *options) *cobra.Command {
	var node string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print the log of a workflow's tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if follow {
				return o.followLogs(args[0], node)
			}
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp := &apiv1.GetWorkflowLogsResponse{}
				err := allPages(func(token string) (string, error) {
					page, err := apiv1.NewWorkflowServiceClient(cc).GetWorkflowLogs(ctx, &apiv1.GetWorkflowLogsRequest{Id: args[0], Node: node, PageToken: token})
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
					printStepEvent(o.out, args[0], ev)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only the steps for this node")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the workflow ends")
	return cmd
}

func newClusterCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Show the Kubernetes cluster as Deckhand recorded it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(func(ctx context.Context, cc grpc.ClientConnInterface) error {
				resp, err := apiv1.NewWorkflowServiceClient(cc).GetCluster(ctx, &apiv1.GetClusterRequest{})
				if err != nil {
					return err
				}
				if done, err := o.printStructured(resp); done {
					return err
				}
				c := resp.GetCluster()
				if c == nil {
					fmt.Fprintln(o.out, "No cluster yet: deckctl init NODE or deckctl apply -f cluster.yaml creates one.")
					return nil
				}
				s := c.GetSpec()
				network := s.GetNetworkProvider()
				if network == "" {
					network = podnet.Providers[0]
				}
				if v := podnet.MustLookup(network).VersionOf(s.GetNetworkProviderVersion()); v != "" {
					network += " " + v
				}
				fmt.Fprintf(o.out, "Kubernetes:  %s\nEndpoint:    %s\nCA hash:     %s\nImages:      %s %s\nPod network: %s, pods from %s\n\n", s.GetKubernetesVersion(),
					dash(s.GetControlPlaneEndpoint()), c.GetCaCertHash(), dash(s.GetRegistry().GetImageRepository()), strings.Join(s.GetRegistry().GetMirrors(), " "),
					network, dash(s.GetPodSubnet()))
				tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tROLE\tJOINED\tKUBELET\tCONTROL PLANE\tWORKFLOW")
				for _, n := range c.GetNodes() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.GetName(), roleName(n.GetRole()), age(n.GetJoined().AsTime()),
						dash(n.GetKubeletVersion()), dash(n.GetControlPlaneVersion()), n.GetWorkflowId())
				}
				return tw.Flush()
			})
		},
	}
}

func roleName(r taskv1.NodeRole) string {
	if r == taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE {
		return "control-plane"
	}
	return "worker"
}

// runWorkflow creates a workflow and shows it until it ends (or prints its ID with
// --detach). The workflow's ID is chosen by the client, so a create whose controller dies
// before answering is sent again to another one and cannot start a second workflow.
func (o *options) runWorkflow(spec *apiv1.WorkflowSpec, f wfFlags) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	wf, err := c.CreateWorkflow(ctx, spec)
	if err != nil {
		return describe(err)
	}
	if f.detach {
		if done, err := o.printStructured(wf); done {
			return err
		}
		fmt.Fprintln(o.out, wf.GetId())
		return nil
	}
	if len(wf.GetSteps()) == 0 {
		if done, err := o.printStructured(wf); done {
			return err
		}
		fmt.Fprintf(o.out, "workflow %s: nothing to do, the cluster already matches\n", wf.GetId())
		return nil
	}
	return o.showWorkflow(c, wf.GetId())
}

// dialWatch connects (within --timeout) for a watch.
func (o *options) dialWatch() (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	return o.dial(ctx)
}

// watchWorkflow shows a workflow live until it ends, following it across controller
// failovers, then prints the outcome. A failed workflow is an error (exit 1).
func (o *options) watchWorkflow(id string) error {
	c, err := o.dialWatch()
	if err != nil {
		return err
	}
	defer c.Close()
	return o.showWorkflow(c, id)
}

func (o *options) showWorkflow(c *client.Client, id string) error {
	v := newLiveView(o.errOut, id)
	last, err := c.Watch(context.Background(), id, client.WatchHandlers{
		Workflow:  v.update,
		Event:     v.event,
		Reconnect: func(error) { v.note("reconnecting to a controller…") },
	})
	v.close()
	if err != nil {
		return watchError(id, err)
	}
	if done, err := o.printStructured(last); done {
		return err
	}
	return outcome(o.out, last)
}

// watchError is why a watch of workflow id failed, as one readable line.
func watchError(id string, err error) error {
	if errors.Is(err, client.ErrWatchLost) {
		return fmt.Errorf("%v (the workflow keeps running; deckctl workflow watch %s)", err, id)
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return describe(se.GRPCStatus().Err())
	}
	return err
}

// followLogs prints a workflow's log lines as they come, until it ends, following it
// across controller failovers.
func (o *options) followLogs(id, node string) error {
	c, err := o.dialWatch()
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Watch(context.Background(), id, client.WatchHandlers{Event: func(ev *taskv1.TaskEvent) {
		if node == "" || strings.HasPrefix(ev.GetTaskId(), id+"."+node+".") {
			printStepEvent(o.out, id, ev)
		}
	}})
	if err != nil {
		return watchError(id, err)
	}
	return nil
}

// stepOf turns a workflow task ID (WF.NODE.WHAT.N) into "NODE/WHAT".
func stepOf(wfID, taskID string) string {
	rest := strings.TrimPrefix(taskID, wfID+".")
	if i := strings.LastIndex(rest, "."); i > 0 {
		rest = rest[:i]
	}
	return strings.Replace(rest, ".", "/", 1)
}

func printStepEvent(w io.Writer, wfID string, ev *taskv1.TaskEvent) {
	if ev.GetLog() == nil && ev.GetProgress() == nil {
		return
	}
	fmt.Fprintf(w, "%-24s ", stepOf(wfID, ev.GetTaskId()))
	printEvent(w, ev)
}

func stepDuration(s *apiv1.Step) string {
	if s.GetStarted() == nil || s.GetState() == apiv1.StepState_STEP_STATE_PENDING {
		return ""
	}
	end := time.Now()
	if s.GetFinished() != nil {
		end = s.GetFinished().AsTime()
	}
	return end.Sub(s.GetStarted().AsTime()).Round(100 * time.Millisecond).String()
}

func describeWorkflow(w io.Writer, wf *apiv1.Workflow) {
	state := wfState(wf.GetState())
	if wf.GetPaused() && wf.GetState() == apiv1.WorkflowState_WORKFLOW_STATE_RUNNING {
		state += " (paused: no other node starts; deckctl workflow resume " + wf.GetId() + ")"
	}
	fmt.Fprintf(w, "Workflow:  %s\nWhat:      %s\nState:     %s\nCreated:   %s by %s\n", wf.GetId(), wfKind(wf), state,
		wf.GetCreated().AsTime().Local().Format(time.RFC3339), dash(wf.GetCreatedBy()))
	if wf.GetConcurrency() > 0 {
		fmt.Fprintf(w, "Parallel:  %d nodes at a time\n", wf.GetConcurrency())
	}
	if e := wf.GetError(); e != nil {
		fmt.Fprintf(w, "Failed:    %s: %s (%s)\n", dash(wf.GetFailedStep()), e.GetMessage(), e.GetReason())
		if e.GetHint() != "" {
			fmt.Fprintf(w, "Hint:      %s\n", e.GetHint())
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tON\tSTATE\tTRIES\tTIME\tTASK\tDETAIL")
	for _, s := range wf.GetSteps() {
		detail := s.GetSummary()
		if e := s.GetError(); e != nil {
			detail = e.GetMessage()
		} else if len(s.GetOutputs()) > 0 {
			detail = outputsLine(s.GetOutputs())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.GetName(), dash(s.GetNode()), stepState(s.GetState()), s.GetAttempts(), dash(stepDuration(s)), dash(s.GetTaskId()), detail)
	}
	_ = tw.Flush()
}

func outputsLine(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

// outcome prints how the workflow ended and what to do next.
func outcome(w io.Writer, wf *apiv1.Workflow) error {
	id := wf.GetId()
	took := wf.GetUpdated().AsTime().Sub(wf.GetCreated().AsTime()).Round(100 * time.Millisecond)
	if wf.GetSpec().GetDryRun() {
		printChanges(w, wf)
	}
	switch wf.GetState() {
	case apiv1.WorkflowState_WORKFLOW_STATE_SUCCEEDED:
		fmt.Fprintf(w, "workflow %s (%s) succeeded in %v\n", id, wfKind(wf), took)
		if !wf.GetSpec().GetDryRun() {
			fmt.Fprintln(w, "next: deckctl cluster shows the cluster's nodes")
		}
		return nil
	case apiv1.WorkflowState_WORKFLOW_STATE_CANCELLED:
		fmt.Fprintf(w, "workflow %s (%s) was cancelled\n", id, wfKind(wf))
		return fmt.Errorf("workflow %s cancelled", id)
	}
	e := wf.GetError()
	fmt.Fprintf(w, "workflow %s (%s) failed at step %s: %s (%s)\n", id, wfKind(wf), dash(wf.GetFailedStep()), e.GetMessage(), e.GetReason())
	if e.GetHint() != "" {
		fmt.Fprintf(w, "  hint: %s\n", e.GetHint())
	}
	node, _, _ := strings.Cut(wf.GetFailedStep(), "/")
	fmt.Fprintf(w, "  next: deckctl logs %s --node %s    (what happened)\n", id, node)
	fmt.Fprintf(w, "        deckctl workflow retry %s    (resume from the failed step)\n", id)
	return fmt.Errorf("workflow %s failed", id)
}

// printSteps lists a planned workflow's steps per node, in order: "node-2: preflight,
// packages, ..., join, network, ready, record" (a step on another node, such as a token
// minted on a control plane, is listed with the node it is for).
func printSteps(w io.Writer, wf *apiv1.Workflow) {
	byNode := map[string][]string{}
	var nodes []string
	for _, s := range wf.GetSteps() {
		node, what, ok := strings.Cut(s.GetName(), "/")
		if !ok {
			node, what = "", s.GetName()
		}
		if _, seen := byNode[node]; !seen {
			nodes = append(nodes, node)
		}
		byNode[node] = append(byNode[node], what)
	}
	if len(nodes) == 0 {
		return
	}
	fmt.Fprintln(w, "Steps:")
	for _, n := range nodes {
		fmt.Fprintf(w, "  %s: %s\n", n, strings.Join(byNode[n], ", "))
	}
}

// printChanges lists, per host, what a dry-run would change.
func printChanges(w io.Writer, wf *apiv1.Workflow) {
	byHost := map[string][]string{}
	var hosts []string
	for _, s := range wf.GetSteps() {
		for _, c := range s.GetChanges() {
			h := s.GetNode()
			if _, ok := byHost[h]; !ok {
				hosts = append(hosts, h)
			}
			line, _, _ := strings.Cut(c.GetDetail(), "\n")
			byHost[h] = append(byHost[h], fmt.Sprintf("%-10s %s  %s", c.GetKind(), c.GetTarget(), line))
		}
	}
	if len(hosts) == 0 {
		fmt.Fprintln(w, "dry-run: no changes on any host")
		return
	}
	sort.Strings(hosts)
	fmt.Fprintln(w, "dry-run: changes per host (nothing was changed)")
	for _, h := range hosts {
		fmt.Fprintf(w, "%s: %d change(s)\n", h, len(byHost[h]))
		for _, l := range byHost[h] {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}
