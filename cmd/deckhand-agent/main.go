// Command deckhand-agent runs on every host and executes Deckhand's typed tasks.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/deckhandhq/deckhand/agent"
	"github.com/deckhandhq/deckhand/internal/version"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "deckhand-agent: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

// rootHelp says what --root confines and what it does not: host files are read and
// written under it, but commands are not chrooted into it.
const rootHelp = "prefix for every host FILE the agent reads or writes (use / on a real host). " +
	"It does NOT confine commands: no chroot; a task's command is looked up in ROOT/usr/local/sbin, ROOT/usr/local/bin, " +
	"ROOT/usr/sbin, ROOT/usr/bin, ROOT/sbin and ROOT/bin, then on the agent's own PATH (so a binary missing under ROOT " +
	"runs from the host), and it runs as the agent with the whole host in view"

func run(args []string, stdout, stderr io.Writer) error {
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("deckhand-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	controllers := fs.String("controller", "", "comma-separated controller addresses HOST:PORT")
	fs.StringVar(&cfg.Token, "token", "", "bootstrap token, from deckctl token create: enrolls on the first start, and enrolls again (replacing the certificate) when the node was deleted and this is a new token")
	tokenFile := fs.String("token-file", "", "read the bootstrap token from this file instead (keeps it out of the process list)")
	fs.StringVar(&cfg.CACertHash, "ca-cert-hash", "", "sha256:<hex> pin of the controller CA (first start only)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "node name, an RFC 1123 label (default: the host name)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the agent's key, certificate and state")
	fs.StringVar(&cfg.Root, "root", cfg.Root, rootHelp)
	fs.StringVar(&cfg.CRISocket, "cri-socket", cfg.CRISocket, "the container runtime's CRI socket, a path under --root: the runtime task makes containerd serve it; facts and the images, diagnostics and preflight tasks talk to it")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "host:port to serve Prometheus /metrics on (plain HTTP; default off)")
	fs.DurationVar(&cfg.FactsInterval, "facts-interval", cfg.FactsInterval, "how often the host's facts (certificates, runtime, versions) are read again between tasks; sent to the controller when they changed")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the build (version, VCS revision, Go version) and exit")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, "deckhand-agent", version.Get())
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: all options are flags (see --help)", fs.Arg(0))
	}
	if *tokenFile != "" {
		if cfg.Token != "" {
			return fmt.Errorf("--token and --token-file both given: use one")
		}
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %v", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if *controllers != "" {
		cfg.Controllers = strings.Split(*controllers, ",")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *level)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
