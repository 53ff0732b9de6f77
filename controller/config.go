package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

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
		Logger:  slog.Default(),
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
	} else if !isLoopback(host) {
		errs = append(errs, fmt.Errorf("--listen %q is not a loopback address: the API has no mTLS yet, so this version only listens on 127.0.0.1 or ::1", c.Listen))
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

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) advertise() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Listen
}
