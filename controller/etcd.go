package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/deckhandhq/deckhand/controller/api"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/version"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	"github.com/deckhandhq/deckhand/store"
	"github.com/deckhandhq/deckhand/store/etcdstore"
	"github.com/deckhandhq/deckhand/store/raftstore"
)

// Store backends.
const (
	StoreRaft = "raft"
	StoreEtcd = "etcd"
)

// EtcdConfig points the controller at an existing etcd cluster (--store etcd).
type EtcdConfig struct {
	Endpoints []string
	// CACert verifies etcd's server certificate; Cert and Key are the client certificate.
	CACert, Cert, Key string
	// Prefix under which Deckhand keeps its keys.
	Prefix string
}

// presenceKey holds each controller's address while it runs with --store etcd.
const presenceKey = "/_controllers/"

// etcdTLS builds the client TLS config from the --etcd-* files (nil: plain).
func etcdTLS(c EtcdConfig) (*tls.Config, error) {
	if c.CACert == "" && c.Cert == "" && c.Key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		b, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", c.CACert)
		}
		cfg.RootCAs = pool
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together: give both or neither")
	}
	if c.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// openEtcd opens the etcd backend, then takes the cluster CA from etcd (or creates and
// stores it when this is the first controller on the prefix).
func (c *Controller) openEtcd(ctx context.Context) (backend, error) {
	cfg := c.cfg
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft.db")); err == nil {
		return nil, fmt.Errorf("data dir %s holds the embedded raft store: drop --store etcd to start it, or use an empty --data-dir with --store etcd", cfg.DataDir)
	}
	tlsCfg, err := etcdTLS(cfg.Etcd)
	if err != nil {
		return nil, err
	}
	st, err := etcdstore.Open(ctx, etcdstore.Config{
		Endpoints: cfg.Etcd.Endpoints, TLS: tlsCfg, Prefix: cfg.Etcd.Prefix,
		ID: c.id, Address: cfg.advertise(), Logger: cfg.Logger, Dial: c.dial,
		// A data dir that ran before belongs to one cluster: refuse a prefix holding another.
		ClusterID: readMemberCluster(cfg.DataDir),
	})
	if err != nil {
		return nil, err
	}
	ca, err := c.etcdCA(ctx, st)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	c.ca = ca
	if err := writeName(cfg.DataDir, c.id, st.ClusterID()); err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := raftstore.SecureDataDir(cfg.DataDir); err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := c.serveTLS(); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// etcdCA returns the CA kept in etcd; the first controller creates it. A data dir with
// another cluster's CA is refused.
func (c *Controller) etcdCA(ctx context.Context, st store.Store) (*pki.CA, error) {
	local, err := loadLocalCA(c.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	for {
		kv, _, err := st.Get(ctx, api.CAKey)
		if err == nil {
			var rec clusterv1.CARecord
			if err := proto.Unmarshal(kv.Value, &rec); err != nil {
				return nil, fmt.Errorf("CA record in etcd: %w", err)
			}
			ca, err := pki.LoadCA(rec.GetCertPem(), rec.GetKeyPem())
			if err != nil {
				return nil, fmt.Errorf("CA record in etcd: %w", err)
			}
			if local != nil && local.Hash() != ca.Hash() {
				return nil, fmt.Errorf("data dir %s belongs to another cluster (CA %s) than the one under --etcd-prefix %s (CA %s): use an empty --data-dir or another prefix", c.cfg.DataDir, local.Hash(), c.cfg.Etcd.Prefix, ca.Hash())
			}
			if local == nil {
				if err := writeLocalCA(c.cfg.DataDir, ca); err != nil {
					return nil, err
				}
			}
			return ca, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		ca := local
		if ca == nil {
			if ca, err = pki.NewCA("deckhand-ca"); err != nil {
				return nil, err
			}
		}
		b, err := proto.Marshal(&clusterv1.CARecord{CertPem: ca.CertPEM, KeyPem: ca.KeyPEM})
		if err != nil {
			return nil, err
		}
		_, err = st.Txn(ctx, store.Txn{If: []store.Compare{store.Absent(api.CAKey)}, Then: []store.Op{store.Put(api.CAKey, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue // another controller was first: take its CA
		}
		if err != nil {
			return nil, err
		}
	}
}

// writeName keeps the replica's name and cluster in the data dir, so a restart keeps them.
func writeName(dir, id, cluster string) error {
	p := filepath.Join(dir, "member.json")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	b, _ := json.Marshal(map[string]string{"id": id, "cluster_id": cluster, "store": StoreEtcd})
	return os.WriteFile(p, b, 0o600)
}

// readMemberCluster is the cluster a data dir belongs to, "" when it has none yet.
func readMemberCluster(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "member.json"))
	if err != nil {
		return ""
	}
	var m struct {
		Cluster string `json:"cluster_id"`
	}
	_ = json.Unmarshal(b, &m)
	return m.Cluster
}

// presence is a controller's entry under presenceKey.
type presence struct {
	ID      string    `json:"id"`
	Address string    `json:"address"`
	Seen    time.Time `json:"seen"`
	// Version is the controller's build (version.Info.String).
	Version string `json:"version,omitempty"`
}

// presenceLoop announces this controller while it runs (--store etcd: there is no raft
// configuration to list the replicas from).
func (c *Controller) presenceLoop(ctx context.Context) {
	if c.raft != nil {
		return
	}
	tick := time.NewTicker(c.cfg.Heartbeat)
	defer tick.Stop()
	for {
		b, _ := json.Marshal(presence{ID: c.id, Address: c.cfg.advertise(), Seen: time.Now().UTC(), Version: version.Get().String()})
		if _, err := c.store.Txn(ctx, store.Txn{Then: []store.Op{store.Put(presenceKey+c.id, b)}}); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Debug("announce this controller", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// presence lists the controllers that announced themselves.
func (c *Controller) presence(ctx context.Context) ([]presence, error) {
	kvs, _, err := c.store.List(ctx, presenceKey)
	if err != nil {
		return nil, err
	}
	var out []presence
	for _, kv := range kvs {
		var p presence
		if json.Unmarshal(kv.Value, &p) == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// presenceMembers lists controllers sharing an etcd: the ones that announced themselves,
// unreachable when not seen for three heartbeats.
type presenceMembers struct{ c *Controller }

func (m presenceMembers) ListMembers(ctx context.Context) (api.MemberList, error) {
	ps, err := m.c.presence(ctx)
	if err != nil {
		return api.MemberList{}, err
	}
	out := api.MemberList{ClusterID: m.c.store.ClusterID(), ServedBy: m.c.id, Store: StoreEtcd}
	if l, err := m.c.store.Leader(ctx); err == nil {
		out.LeaderID = l.ID
	}
	stale := 3 * m.c.cfg.Heartbeat
	for _, p := range ps {
		mem := api.Member{ID: p.ID, Address: p.Address, Voter: true, Unreachable: time.Since(p.Seen) > stale}
		if !mem.Unreachable {
			mem.Version = p.Version
			mem.RaftState = "Follower"
			if p.ID == out.LeaderID {
				mem.RaftState = "Leader"
			}
		}
		out.Members = append(out.Members, mem)
	}
	slices.SortFunc(out.Members, func(a, b api.Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m presenceMembers) RemoveMember(ctx context.Context, id string, _ string) error {
	_, err := m.c.store.Txn(ctx, store.Txn{If: []store.Compare{{Key: presenceKey + id, Target: store.CompareModRevision, ModRevision: 0}}, Then: nil})
	if err == nil {
		return fmt.Errorf("%w: no controller %s", store.ErrNotFound, id)
	}
	_, err = m.c.store.Txn(ctx, store.Txn{Then: []store.Op{store.Delete(presenceKey + id)}})
	return err
}
