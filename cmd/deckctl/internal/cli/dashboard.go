package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/deckhandhq/deckhand/cmd/deckctl/internal/dashboard"
	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
)

func newDashboardCmd(o *options) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a web UI on this machine that reaches the controllers with your credential",
		Long: "Serves the dashboard on a loopback address: the nodes with their facts and state, the cluster,\n" +
			"the workflows with a live timeline per node and step and their logs, the audit trail, and join,\n" +
			"reset, retry and cancel after a confirmation. It reaches the controllers' REST API with the\n" +
			"credential file (as kubectl proxy does); nothing listens beyond this machine. Open the URL it\n" +
			"prints: the page keeps its token, new each run, in the tab and sends it with each call. Ctrl-C stops it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := dashboard.CheckListen(listen); err != nil {
				return fmt.Errorf("--listen %w", err)
			}
			cfg, err := clientconfig.Load(o.config)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("no credentials at %s: use the admin.conf from a controller's data dir, or a file made by deckctl credentials create", o.config)
				}
				return err
			}
			tlsCfg, err := cfg.TLS()
			if err != nil {
				return fmt.Errorf("%s: %w", o.config, err)
			}
			dc := dashboard.DefaultConfig()
			dc.Listen, dc.TLS, dc.Controllers = listen, tlsCfg, cfg.Controllers
			if o.controllers != "" {
				dc.Controllers = nil
				for _, c := range strings.Split(o.controllers, ",") {
					if c = strings.TrimSpace(c); c != "" {
						dc.Controllers = append(dc.Controllers, c)
					}
				}
			}
			if cert, err := pki.ParseCert([]byte(cfg.Certificate)); err == nil {
				dc.Subject = cert.Subject.CommonName
				if id, err := pki.IdentityOf(cert); err == nil {
					dc.Role = id.Role
				}
			}
			s, err := dashboard.New(dc)
			if err != nil {
				return err
			}
			if done, err := o.printValue(map[string]string{"url": s.URL(), "subject": dc.Subject, "role": dc.Role}); done {
				if err != nil {
					return err
				}
			} else {
				fmt.Fprintf(o.out, "Deckhand dashboard, acting as %s (%s) on %s:\n\n    %s\n\n"+
					"Open it in a browser on this machine (the link holds this run's token). Ctrl-C stops it.\n",
					dc.Subject, dc.Role, strings.Join(dc.Controllers, ", "), s.URL())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return s.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "loopback host:port to serve on (port 0 picks a free one); 127.0.0.1, [::1] or localhost only")
	return cmd
}
