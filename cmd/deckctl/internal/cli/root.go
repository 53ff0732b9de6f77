// Package cli implements deckctl's commands.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/deckhandhq/deckhand/client"
	"github.com/deckhandhq/deckhand/internal/version"
)

type options struct {
	config      string
	controllers string
	timeout     time.Duration
	output      string
	out, errOut io.Writer
	// completing: the shell asks for names (no writes, no warnings).
	completing bool
}

// NewRoot builds the deckctl command tree.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	o := &options{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "deckctl",
		Short:         "Bootstrap and operate kubeadm clusters through the Deckhand controller",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch o.output {
			case "table", "json", "yaml":
				return nil
			}
			return fmt.Errorf("-o %q: use table, json or yaml", o.output)
		},
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringVar(&o.config, "config", defaultConfigPath(), "credential file (env DECKHAND_CONFIG; a controller writes admin.conf into its data dir); deckctl writes the controllers' current addresses into it")
	root.PersistentFlags().StringVar(&o.controllers, "controller", os.Getenv("DECKHAND_CONTROLLER"), "comma-separated controller addresses, overriding the config's (env DECKHAND_CONTROLLER)")
	root.PersistentFlags().DurationVar(&o.timeout, "timeout", 15*time.Second, "how long to wait for the controller")
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	root.AddCommand(newMembersCmd(o), newNodesCmd(o), newNodeCmd(o), newTokenCmd(o), newTaskCmd(o), newCredentialsCmd(o), newCertsCmd(o), newEtcdCmd(o), newKubeconfigCmd(o), newAuditCmd(o))
	root.AddCommand(newWorkflowCmds(o)...)
	root.AddCommand(newVersionCmd(o))
	root.AddCommand(newDashboardCmd(o))
	o.addCompletion(root)
	root.Version = version.Get().String()
	root.SetVersionTemplate("deckctl {{.Version}}\n")
	return root
}

func defaultConfigPath() string { return client.DefaultConfigFile() }

// dial connects to the first controller that answers, over mTLS with the config's
// credentials, and fails over between controllers from then on. When the controllers'
// addresses changed, it writes the new list into the credential file.
func (o *options) dial(ctx context.Context) (*client.Client, error) {
	// --timeout is how long deckctl waits for a controller: calls and watches go on with
	// another controller for as long when theirs went away.
	c, err := client.New(ctx, client.Options{ConfigFile: o.config, Controllers: strings.Split(o.controllers, ","), RetryFor: o.timeout})
	if err != nil {
		var ue *client.UnreachableError
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%w; check --controller and that deckhand-controller is running", err)
		}
		return nil, err
	}
	if o.completing {
		return c, nil // a TAB press never rewrites the credential file
	}
	if _, err := c.SaveEndpoints(); err != nil {
		fmt.Fprintf(o.errOut, "warning: %v\n", err)
	}
	return c, nil
}

// describe turns a status error into one readable line with its reason.
func describe(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	reason := st.Code().String()
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = strings.TrimPrefix(info.GetReason(), "ERROR_REASON_")
		}
	}
	return fmt.Errorf("%s (%s)", st.Message(), reason)
}

// call runs fn with a connection and the --timeout deadline.
func (o *options) call(fn func(ctx context.Context, cc grpc.ClientConnInterface) error) error {
	return o.callFor(o.timeout, fn)
}

// callFor runs fn with a connection and a deadline.
func (o *options) callFor(timeout time.Duration, fn func(ctx context.Context, cc grpc.ClientConnInterface) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cc, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer cc.Close()
	if err := fn(ctx, cc); err != nil {
		return describe(err)
	}
	return nil
}

// printStructured prints m as json or yaml (bytes fields that hold text, such as a cluster
// document, as that text); it returns false for table output.
func (o *options) printStructured(m proto.Message) (bool, error) {
	if o.output == "table" {
		return false, nil
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return true, err
	}
	return true, o.printJSON(withTextBytes(b, m.ProtoReflect()))
}

// printValue prints v (a Go value with json tags) as json or yaml; it returns false for
// table output.
func (o *options) printValue(v any) (bool, error) {
	if o.output == "table" {
		return false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return true, err
	}
	return true, o.printJSON(b)
}

// printJSON prints a JSON document as -o asks: indented the way kubectl indents (protojson
// varies its spacing on purpose, so it is re-indented here), or as YAML.
func (o *options) printJSON(b []byte) error {
	var out []byte
	if o.output == "yaml" {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		out = y
	} else {
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "    "); err != nil {
			return err
		}
		out = buf.Bytes()
	}
	_, err := fmt.Fprintln(o.out, strings.TrimRight(string(out), "\n"))
	return err
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
