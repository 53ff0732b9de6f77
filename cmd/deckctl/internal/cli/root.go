// Package cli implements deckctl's commands.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

type options struct {
	controllers string
	timeout     time.Duration
	out, errOut io.Writer
}

// NewRoot builds the deckctl command tree.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	o := &options{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:           "deckctl",
		Short:         "Bootstrap and operate kubeadm clusters through the Deckhand controller",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	def := os.Getenv("DECKHAND_CONTROLLER")
	if def == "" {
		def = "127.0.0.1:7400"
	}
	root.PersistentFlags().StringVar(&o.controllers, "controller", def, "comma-separated controller addresses (env DECKHAND_CONTROLLER)")
	root.PersistentFlags().DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the controller")
	root.AddCommand(newMembersCmd(o))
	return root
}

// dial connects to the first controller that answers.
func (o *options) dial(ctx context.Context) (*grpc.ClientConn, error) {
	var errs []string
	for _, addr := range strings.Split(o.controllers, ",") {
		addr = strings.TrimSpace(addr)
		if addr == "" {
			continue
		}
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cc.Connect()
		ok := waitReady(cctx, cc)
		cancel()
		if ok {
			return cc, nil
		}
		_ = cc.Close()
		errs = append(errs, fmt.Sprintf("%s: not reachable", addr))
	}
	if len(errs) == 0 {
		return nil, errors.New("--controller is empty: give at least one controller address")
	}
	return nil, fmt.Errorf("no controller answered (%s); check --controller and that deckhand-controller is running", strings.Join(errs, "; "))
}

func waitReady(ctx context.Context, cc *grpc.ClientConn) bool {
	for {
		s := cc.GetState()
		if s.String() == "READY" {
			return true
		}
		if !cc.WaitForStateChange(ctx, s) {
			return false
		}
	}
}

// describe turns a status error into the message a user reads.
func describe(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("controller unavailable: %s", st.Message())
	default:
		return errors.New(st.Message())
	}
}

func (o *options) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), o.timeout)
}
