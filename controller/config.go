package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/controller/audit"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/internal/pki"

	"github.com/deckhandhq/deckhand/store/raftstore"
)

// Config configures one controller replica.
type Config struct {
	// DataDir holds the store's files.
	DataDir string
	// Listen is the host:port for gRPC and raft (one port).
	Listen string
	// Advertise is the address other replicas and clients dial; defaults to Listen.
	Advertise string
	// Join lists addresses of running replicas to join; empty bootstraps a new cluster
	// (or restarts from DataDir).
	Join []string
	// Name is the replica's stable name; empty keeps the one in DataDir or picks a random one.
	Name string
	// Token is a controller join token, needed with Join when DataDir has no CA yet.
	Token string
	// CACertHash pins the cluster CA ("sha256:<hex>") when joining.
	CACertHash string
	// JoinTimeout is how long a controller with a fresh data dir keeps retrying its Join
	// addresses (with backoff, each wait logged) while the cluster is not up yet. A wrong
	// token or CA pin fails at once.
	JoinTimeout time.Duration
	// Heartbeat is the agents' heartbeat interval.
	Heartbeat time.Duration
	// NotReadyAfter and LostAfter are the liveness TTLs.
	NotReadyAfter time.Duration
	LostAfter     time.Duration
	// TaskRetention and TaskRetentionCount bound the finished task records kept: a finished
	// task is deleted with its log once it ended TaskRetention ago or TaskRetentionCount
	// newer ones exist. Tasks of unfinished workflows are kept.
	TaskRetention      time.Duration
	TaskRetentionCount int
	// AuditRetention and AuditRetentionCount bound the audit trail: records older than
	// AuditRetention, and beyond the newest AuditRetentionCount, are deleted.
	AuditRetention      time.Duration
	AuditRetentionCount int
	// AgentCertValidity is how long the node certificates issued at enrollment and renewal
	// are valid; agents renew theirs after two thirds of it.
	AgentCertValidity time.Duration
	// MetricsListen serves Prometheus metrics on a separate plain-HTTP listener; empty: off.
	MetricsListen string
	// DebugListen serves Go's profiler (net/http/pprof) on a separate plain-HTTP listener,
	// loopback only; empty: off.
	DebugListen string
	// Dial opens TCP connections to peers; nil uses net.Dialer. (Tests use it to partition.)
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Store is StoreRaft (the embedded store, default) or StoreEtcd (an existing etcd).
	Store string
	// Etcd is used with StoreEtcd.
	Etcd EtcdConfig
	// Raft tunes the embedded store; DataDir, Listen, Join and Name above take precedence.
	Raft raftstore.Config
	// Logger receives the controller's logs.
	Logger *slog.Logger
}

// DefaultConfig fills every field with its default.
func DefaultConfig() Config {
	return Config{
		DataDir: "/var/lib/deckhand-controller",
		Listen:  "127.0.0.1:7400",
		Raft:    raftstore.DefaultConfig(),
		Store:   StoreRaft,
		Etcd:    EtcdConfig{Prefix: "/deckhand"},
		Logger:  slog.Default(),

		JoinTimeout: 3 * time.Minute,

		Heartbeat:     2 * time.Second,
		NotReadyAfter: 10 * time.Second,
		LostAfter:     5 * time.Minute,

		TaskRetention:      tasks.DefaultRetentionPeriod,
		TaskRetentionCount: tasks.DefaultRetentionCount,

		AuditRetention:      audit.DefaultRetention,
		AuditRetentionCount: audit.DefaultRetentionCount,

		AgentCertValidity: pki.ClientValidity,
	}
}

// Validate explains, field by field, what is wrong.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty: give the directory for the controller's state"))
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("--listen %q is not host:port (for example 127.0.0.1:7400)", c.Listen))
	} else if port == "0" || port == "" {
		errs = append(errs, fmt.Errorf("--listen %q needs a fixed port: other replicas and deckctl dial it", c.Listen))
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("--advertise %q is not host:port", c.Advertise))
		}
	} else if host == "" || host == "0.0.0.0" || host == "::" {
		errs = append(errs, fmt.Errorf("--listen %q has no specific host: set --advertise to the address other replicas dial", c.Listen))
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("--join %q is not host:port", j))
		}
	}
	if c.JoinTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--join-timeout %v must be positive (for example 3m)", c.JoinTimeout))
	}
	if len(c.Join) > 0 && c.CACertHash == "" {
		errs = append(errs, errors.New("--join needs --ca-cert-hash: copy it from deckctl token create --purpose controller"))
	}
	if c.CACertHash != "" {
		if _, err := pki.ParseHash(c.CACertHash); err != nil {
			errs = append(errs, fmt.Errorf("--ca-cert-hash: %v", err))
		}
	}
	if c.Heartbeat <= 0 || c.NotReadyAfter < 3*c.Heartbeat || c.LostAfter <= c.NotReadyAfter {
		errs = append(errs, fmt.Errorf("liveness timers must satisfy 0 < 3 x heartbeat (%v) <= not-ready-after (%v) < lost-after (%v): a heartbeat relayed through another replica can be 2.5 intervals old", c.Heartbeat, c.NotReadyAfter, c.LostAfter))
	}
	if c.TaskRetention < time.Minute || c.TaskRetentionCount < 1 {
		errs = append(errs, fmt.Errorf("--task-retention (%v) must be at least 1m and --task-retention-count (%d) at least 1: they bound the finished task records kept", c.TaskRetention, c.TaskRetentionCount))
	}
	if c.AuditRetention < time.Hour || c.AuditRetentionCount < 100 || c.AuditRetentionCount > audit.MaxRetentionCount {
		errs = append(errs, fmt.Errorf("--audit-retention (%v) must be at least 1h and --audit-retention-count (%d) between 100 and %d: they bound the audit trail kept in the store", c.AuditRetention, c.AuditRetentionCount, audit.MaxRetentionCount))
	}
	if c.AgentCertValidity < pki.MinValidity {
		errs = append(errs, fmt.Errorf("agent certificate validity %v is shorter than %v", c.AgentCertValidity, pki.MinValidity))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q is not host:port", c.MetricsListen))
		}
	}
	if c.DebugListen != "" {
		if err := checkDebugListen(c.DebugListen); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Store {
	case StoreRaft, "":
	case StoreEtcd:
		if len(c.Etcd.Endpoints) == 0 {
			errs = append(errs, errors.New("--store etcd needs --etcd-endpoints: the client URLs of your etcd cluster, for example https://10.0.0.5:2379"))
		}
		for _, e := range c.Etcd.Endpoints {
			if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
				if _, _, err := net.SplitHostPort(e); err != nil {
					errs = append(errs, fmt.Errorf("--etcd-endpoints %q is not a URL or host:port", e))
				}
			}
		}
		if !strings.HasPrefix(c.Etcd.Prefix, "/") || strings.HasSuffix(c.Etcd.Prefix, "/") || len(c.Etcd.Prefix) < 2 {
			errs = append(errs, fmt.Errorf("--etcd-prefix %q must start with / and not end with / (for example /deckhand)", c.Etcd.Prefix))
		}
		if len(c.Join) > 0 {
			errs = append(errs, errors.New("--join is for the embedded raft store: with --store etcd every controller points at the same etcd and needs no --join"))
		}
	default:
		errs = append(errs, fmt.Errorf("--store %q: use raft (embedded, the default) or etcd", c.Store))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("no logger"))
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (c *Config) advertise() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Listen
}
