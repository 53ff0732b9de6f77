// Command deckhand-controller runs one replica of the Deckhand controller.
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
	"time"

	"github.com/deckhandhq/deckhand/controller"
	"github.com/deckhandhq/deckhand/internal/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "deckhand-controller: %v\n", oneLine(err))
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := controller.DefaultConfig()
	fs := flag.NewFlagSet("deckhand-controller", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the replica's state (created 0700)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "host:port for the API and raft (one port)")
	fs.StringVar(&cfg.Advertise, "advertise", "", "host:port other replicas and clients dial (default: --listen)")
	join := fs.String("join", "", "comma-separated addresses of running replicas to join (fresh data dir only)")
	fs.StringVar(&cfg.Name, "name", "", "replica name (default: the one in --data-dir, or a random one)")
	fs.StringVar(&cfg.Token, "token", "", "controller join token (with --join and an empty data dir): deckctl token create --purpose controller")
	tokenFile := fs.String("token-file", "", "read the join token from this file instead (keeps it out of the process list)")
	fs.StringVar(&cfg.CACertHash, "ca-cert-hash", "", "sha256:<hex> pin of the cluster CA (with --join)")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "how long to keep retrying --join while the cluster is starting (a wrong --token or --ca-cert-hash fails at once)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "host:port to serve Prometheus /metrics on (plain HTTP; default off)")
	fs.StringVar(&cfg.DebugListen, "debug-addr", "", "loopback host:port to serve Go's profiler (/debug/pprof/) on (plain HTTP; default off)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat-interval", cfg.Heartbeat, "how often agents send heartbeats")
	fs.DurationVar(&cfg.NotReadyAfter, "node-not-ready-after", cfg.NotReadyAfter, "a node without heartbeats this long becomes NotReady")
	fs.DurationVar(&cfg.LostAfter, "node-lost-after", cfg.LostAfter, "a node without heartbeats this long becomes Lost")
	fs.DurationVar(&cfg.TaskRetention, "task-retention", cfg.TaskRetention, "finished task records (with their logs and artifacts) older than this are deleted; tasks of unfinished workflows are kept")
	fs.IntVar(&cfg.TaskRetentionCount, "task-retention-count", cfg.TaskRetentionCount, "at most this many finished task records are kept; older ones beyond it are deleted")
	fs.DurationVar(&cfg.AuditRetention, "audit-retention", cfg.AuditRetention, "audit trail records older than this are deleted (deckctl audit)")
	fs.IntVar(&cfg.AuditRetentionCount, "audit-retention-count", cfg.AuditRetentionCount, "at most this many audit trail records are kept; older ones beyond it are deleted")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "where the state lives: raft (embedded, replicated between controllers) or etcd (an existing etcd cluster)")
	etcdEndpoints := fs.String("etcd-endpoints", "", "comma-separated etcd client URLs (with --store etcd)")
	fs.StringVar(&cfg.Etcd.CACert, "etcd-cacert", "", "CA certificate that verifies etcd (with --store etcd)")
	fs.StringVar(&cfg.Etcd.Cert, "etcd-cert", "", "client certificate for etcd (with --store etcd)")
	fs.StringVar(&cfg.Etcd.Key, "etcd-key", "", "client key for etcd (with --store etcd)")
	fs.StringVar(&cfg.Etcd.Prefix, "etcd-prefix", cfg.Etcd.Prefix, "key prefix for Deckhand's state in etcd (with --store etcd)")
	raftTimeout := fs.Duration("raft-timeout", cfg.Raft.HeartbeatTimeout, "how long followers wait to hear from the raft leader before electing another, and the leader to hear from a quorum before stepping down: lower fails over sooner, too low for the host's load causes needless elections; 200ms..10s")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "text", "text (key=value lines) or json (one JSON object per line, for a SIEM: the audit trail's lines have msg \"audit\")")
	showVersion := fs.Bool("version", false, "print the build (version, VCS revision, Go version) and exit")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if *showVersion {
		_, err := fmt.Println("deckhand-controller", version.Get())
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
	if *raftTimeout < 200*time.Millisecond || *raftTimeout > 10*time.Second {
		return fmt.Errorf("--raft-timeout %v: give 200ms..10s (default %v)", *raftTimeout, controller.DefaultConfig().Raft.HeartbeatTimeout)
	}
	cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout, cfg.Raft.LeaderLeaseTimeout = *raftTimeout, *raftTimeout, *raftTimeout
	if *join != "" {
		cfg.Join = strings.Split(*join, ",")
	}
	if *etcdEndpoints != "" {
		cfg.Etcd.Endpoints = strings.Split(*etcdEndpoints, ",")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *level)
	}
	switch *format {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	default:
		return fmt.Errorf("--log-format %q: use text or json", *format)
	}
	cfg.Raft.Logger = cfg.Logger

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := controller.New(ctx, cfg)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// oneLine keeps a failure to the single line the operator reads.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
