// Command deckhand-agent runs on every host and executes Deckhand's typed tasks.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/deckhandhq/deckhand/agent"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "deckhand-agent: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := agent.DefaultConfig()
	fs := flag.NewFlagSet("deckhand-agent", flag.ContinueOnError)
	controllers := fs.String("controller", "", "comma-separated controller addresses HOST:PORT")
	fs.StringVar(&cfg.Token, "token", "", "bootstrap token (first start only), from deckctl token create")
	tokenFile := fs.String("token-file", "", "read the bootstrap token from this file instead (keeps it out of the process list)")
	fs.StringVar(&cfg.CACertHash, "ca-cert-hash", "", "sha256:<hex> pin of the controller CA (first start only)")
	fs.StringVar(&cfg.NodeName, "node-name", "", "node name, an RFC 1123 label (default: the host name)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the agent's key, certificate and state")
	fs.StringVar(&cfg.Root, "root", cfg.Root, "prefix for every host path the agent reads or writes")
	fs.StringVar(&cfg.CRISocket, "cri-socket", cfg.CRISocket, "container runtime socket (under --root)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "host:port to serve Prometheus /metrics on (plain HTTP; default off)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
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
