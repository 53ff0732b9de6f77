package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config configures the connection of one controller replica to etcd.
type Config struct {
	// Endpoints are etcd client URLs: https://10.0.0.5:2379, http://127.0.0.1:2379, or
	// host:port (https when TLS is set). Give every member so the client can fail over.
	Endpoints []string
	// TLS is the client TLS config: the CA that signed etcd's serving certificates and,
	// when etcd runs with --client-cert-auth, a client certificate. nil: plain HTTP.
	TLS *tls.Config
	// Prefix is the etcd key prefix holding this Deckhand cluster: store key /nodes/a is
	// etcd key PREFIX/nodes/a. It starts with '/' and does not end with '/'. Store keys must
	// start with '/'. Default /deckhand.
	Prefix string
	// DialTimeout bounds reaching etcd in Open (default 5s).
	DialTimeout time.Duration
	// RequestTimeout bounds one request, retries included, when the caller's context has no
	// earlier deadline; past it the request fails with store.ErrNoLeader (default 5s).
	RequestTimeout time.Duration
	// SessionTTL is the TTL of a campaign's etcd lease, rounded up to whole seconds: how
	// long leadership outlives a leader that stopped without resigning (default 10s).
	SessionTTL time.Duration
	// ID names this replica in the election (LeaderInfo.ID). Required.
	ID string
	// Address is where other replicas reach this one, host:port (LeaderInfo.Address).
	// Required.
	Address string
	// ClusterID, when set, is the Deckhand cluster this replica belongs to: Open fails with
	// ErrForeignCluster when the prefix holds another one and with ErrNoCluster when it
	// holds none (only a replica without a cluster creates one). Empty: the prefix's cluster
	// is adopted, or a new one is created.
	ClusterID string
	// Logger receives the store's logs and the etcd client's (its info chatter at debug).
	// Default slog.Default().
	Logger *slog.Logger
	// Dial opens the connections to etcd (tests route them through a fault-injecting
	// network). nil: plain TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Defaults.
const (
	DefaultPrefix         = "/deckhand"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultSessionTTL     = 10 * time.Second
)

// DefaultConfig returns a config with every optional field at its default; set Endpoints,
// ID and Address.
func DefaultConfig() Config {
	return Config{
		Prefix:         DefaultPrefix,
		DialTimeout:    DefaultDialTimeout,
		RequestTimeout: DefaultRequestTimeout,
		SessionTTL:     DefaultSessionTTL,
		Logger:         slog.Default(),
	}
}

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	eps := make([]string, 0, len(c.Endpoints))
	for _, ep := range c.Endpoints {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	c.Endpoints = eps
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = d.SessionTTL
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// Validate explains what is wrong with the configuration. Zero fields that have a default
// are valid.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("no etcd endpoints: set --etcd-endpoints, for example https://10.0.0.5:2379"))
	}
	for _, ep := range c.Endpoints {
		if _, err := parseEndpoint(ep, c.TLS != nil); err != nil {
			errs = append(errs, err)
		}
	}
	if p := c.Prefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")) {
		errs = append(errs, fmt.Errorf("etcd prefix %q is invalid: it must start with '/' and not end with '/', like /deckhand", p))
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 {
		errs = append(errs, errors.New("dial and request timeouts must not be negative"))
	}
	if c.SessionTTL < 0 || (c.SessionTTL > 0 && c.SessionTTL < time.Second) {
		errs = append(errs, fmt.Errorf("session TTL %v is too short: etcd leases last whole seconds, at least 1s", c.SessionTTL))
	}
	if strings.TrimSpace(c.ID) == "" {
		errs = append(errs, errors.New("replica ID is empty: it names this controller in the etcd election"))
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("replica address %q is not host:port: other replicas reach the leader there", c.Address))
	}
	return errors.Join(errs...)
}

// endpoint is one parsed etcd client URL.
type endpoint struct {
	raw  string
	host string // host:port
	tls  bool
}

// parseEndpoint accepts http://host:port, https://host:port and host:port (TLS when the
// client has a TLS config). An http:// endpoint with a TLS config is refused: the etcd
// client would silently talk plain HTTP to it.
func parseEndpoint(raw string, haveTLS bool) (endpoint, error) {
	ep := endpoint{raw: raw}
	host := raw
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return ep, fmt.Errorf("etcd endpoint %q is not a URL: %v", raw, err)
		}
		switch u.Scheme {
		case "http":
			if haveTLS {
				return ep, fmt.Errorf("etcd endpoint %q is http:// but etcd TLS is configured: use https://", raw)
			}
		case "https":
			ep.tls = true
		default:
			return ep, fmt.Errorf("etcd endpoint %q: scheme %q is not supported: use https://host:port or http://host:port", raw, u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return ep, fmt.Errorf("etcd endpoint %q has a path: give only scheme://host:port", raw)
		}
		host = u.Host
	} else {
		ep.tls = haveTLS
	}
	if _, port, err := net.SplitHostPort(host); err != nil || port == "" {
		return ep, fmt.Errorf("etcd endpoint %q has no host:port", raw)
	}
	ep.host = host
	return ep, nil
}

func (e endpoint) url(path string) string {
	if e.tls {
		return "https://" + e.host + path
	}
	return "http://" + e.host + path
}

// ttlSeconds is the session TTL in whole seconds, rounded up.
func (c *Config) ttlSeconds() int {
	return int((c.SessionTTL + time.Second - 1) / time.Second)
}
