package dashboard

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Config is what a dashboard serves and how it reaches the controllers.
type Config struct {
	// Listen is the loopback host:port the UI is served on; port 0 picks a free one.
	Listen string
	// Controllers are the controllers' host:port addresses, tried in order.
	Controllers []string
	// TLS is the client configuration of the credential file: its certificate and CA.
	TLS *tls.Config
	// Subject and Role name the credential, for the UI (the controllers decide what it may do).
	Subject, Role string
	// DialTimeout bounds one connection attempt to one controller.
	DialTimeout time.Duration
	// FailedFor is how long a controller that did not answer is tried after the others.
	FailedFor time.Duration
	// MaxBodyBytes bounds a request body the UI sends.
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// DefaultConfig fills every field but Controllers, TLS, Subject and Role.
func DefaultConfig() Config {
	return Config{
		Listen:       "127.0.0.1:0",
		DialTimeout:  5 * time.Second,
		FailedFor:    30 * time.Second,
		MaxBodyBytes: 1 << 20,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Validate explains what is wrong with c.
func (c Config) Validate() error {
	if err := CheckListen(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if len(c.Controllers) == 0 {
		return errors.New("no controller address: the credential file lists none (or pass --controller)")
	}
	if c.TLS == nil || len(c.TLS.Certificates) == 0 || c.TLS.RootCAs == nil {
		return errors.New("no client certificate and CA: the dashboard reaches the controllers with the credential file's")
	}
	if c.DialTimeout <= 0 || c.FailedFor < 0 || c.MaxBodyBytes <= 0 {
		return errors.New("DialTimeout and MaxBodyBytes must be positive, FailedFor not negative")
	}
	if c.Logger == nil {
		return errors.New("no Logger")
	}
	return nil
}

// CheckListen accepts a loopback host:port only (127.0.0.0/8, ::1 or localhost): the
// dashboard acts with the user's credential, so no other machine may reach it.
func CheckListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (for example 127.0.0.1:8080, or 127.0.0.1:0 for a free port)", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the dashboard acts with your credential, so it listens on this machine only; use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT (reach it from elsewhere through an SSH tunnel: ssh -L 8080:127.0.0.1:8080 HOST)", addr)
	}
	return nil
}

// listenAddr is the address to bind: localhost is 127.0.0.1, never what a resolver says.
func listenAddr(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
