// Package loadbalancer is the agent's load_balancer task: a node's part of the API servers'
// load balancer. haproxy (and, for a VIP, keepalived) come from the distribution's
// packages; Deckhand writes their whole configuration files (internal/lbconf), has the
// tools check them before they replace the running ones, and reloads the services. The
// files the packages shipped are kept aside and put back when the load balancer is removed.
package loadbalancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/agent/host"
	"github.com/deckhandhq/deckhand/agent/tasks"
	"github.com/deckhandhq/deckhand/internal/hostos"
	"github.com/deckhandhq/deckhand/internal/lbconf"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	stateDir       = "/var/lib/deckhand/loadbalancer"
	lockFile       = "/var/lib/deckhand/loadbalancer.lock"
	generationFile = stateDir + "/generation"
	// listenWithin bounds the wait for haproxy to accept connections after a (re)start.
	listenWithin = 20 * time.Second
)

// services are the units and binaries of each type.
func services(typ string) []string {
	if typ == lbconf.VIP {
		return []string{"haproxy", "keepalived"}
	}
	return []string{"haproxy"}
}

func configPath(svc string) string {
	if svc == "keepalived" {
		return lbconf.KeepalivedConfigPath
	}
	return lbconf.HAProxyConfigPath
}

// backupPath is where the file a package shipped is kept while Deckhand's is in place.
func backupPath(svc string) string {
	return filepath.Join(stateDir, filepath.Base(configPath(svc))+".orig")
}

// Run configures the load balancer: outputs "endpoint" and "backends".
func Run(ctx context.Context, t *taskv1.Task, h *host.Host, e *tasks.Emitter) (map[string]string, error) {
	s, err := lbconf.Parse(t.GetSpec().GetLoadBalancer())
	if err != nil {
		return nil, tasks.Errorf("INVALID_ARGUMENT", "fix the task's load_balancer spec", "load_balancer.%v", err)
	}
	l, err := h.Lock(ctx, lockFile, func() { e.Logf("waiting for another load_balancer task on this node (it holds %s)", lockFile) })
	if err != nil {
		return nil, fmt.Errorf("load balancer lock: %w", err)
	}
	defer l.Unlock()
	if s.Remove {
		return remove(ctx, h, e, s)
	}
	out := map[string]string{"endpoint": s.Endpoint(), "backends": strconv.Itoa(len(s.Backends))}
	if applied := h.Generation(generationFile); s.Generation < applied {
		e.Logf("configuration left as it is: this node applied a newer list of API servers (generation %d) than this task's (%d)", applied, s.Generation)
		return out, nil
	}
	if err := install(ctx, h, e, s.Type); err != nil {
		return nil, err
	}
	files := map[string][]byte{"haproxy": lbconf.HAProxyConfig(s)}
	if s.Type == lbconf.VIP {
		iface := s.Interface
		if iface == "" {
			if iface, err = interfaceOf(ctx, h, s.NodeAddress); err != nil {
				return nil, err
			}
		}
		pgrep := ""
		for _, p := range []string{"/usr/bin/pgrep", "/bin/pgrep"} {
			if h.Exists(p) {
				pgrep = p
				break
			}
		}
		if pgrep == "" {
			if !h.DryRun {
				return nil, tasks.Errorf("LB_TOOL_MISSING", "install pgrep (Debian: procps; EL: procps-ng)", "keepalived checks haproxy with pgrep, which is not installed")
			}
			pgrep = "/usr/bin/pgrep" // where the packages above would put it
		}
		files["keepalived"] = lbconf.KeepalivedConfig(s, iface, pgrep)
		e.Logf("VRRP on %s for %s (virtual router %d, priority %d)", iface, s.Address, s.RouterID, s.Priority)
	}
	for _, svc := range services(s.Type) {
		if err := configure(ctx, h, e, svc, files[svc]); err != nil {
			return nil, err
		}
	}
	if !h.DryRun {
		if err := listening(ctx, s); err != nil {
			return nil, err
		}
	}
	if _, err := h.WriteFile(generationFile, []byte(strconv.FormatUint(s.Generation, 10)+"\n"), 0o644); err != nil {
		return nil, err
	}
	e.Logf("load balancer on %s forwards to %d API server(s): %s", s.Endpoint(), len(s.Backends), joinAddrs(s.Backends))
	return out, nil
}

func joinAddrs(as []netip.AddrPort) string {
	var b []string
	for _, a := range as {
		b = append(b, a.String())
	}
	return strings.Join(b, ", ")
}

// install installs the packages the type needs when their binaries are missing.
func install(ctx context.Context, h *host.Host, e *tasks.Emitter, typ string) error {
	var missing []string
	for _, svc := range services(typ) {
		if !h.Has(svc) {
			missing = append(missing, svc)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var argv []string
	switch h.OSFamily() {
	case hostos.Deb:
		argv = append([]string{"apt-get", "install", "-y"}, missing...)
	case hostos.RPM:
		argv = append([]string{"dnf", "install", "-y"}, missing...)
	default:
		return tasks.Errorf("UNSUPPORTED_OS", "install "+strings.Join(missing, " and ")+" yourself, then run the task again", "no package recipe for this OS (/etc/os-release)")
	}
	if err := h.Run(ctx, "install "+strings.Join(missing, " and "), argv...); err != nil {
		return tasks.Errorf("PACKAGES_FAILED", "check the node's package repositories (apt-get update), or install "+strings.Join(missing, " and ")+" yourself", "install %s: %v", strings.Join(missing, ", "), err)
	}
	return nil
}

// configure writes svc's configuration (checked by the tool first), keeps the packaged file
// aside once, enables the service and starts or reloads it.
func configure(ctx context.Context, h *host.Host, e *tasks.Emitter, svc string, conf []byte) error {
	path := configPath(svc)
	if err := keepPackaged(h, svc); err != nil {
		return err
	}
	// A run cut short after writing the file and before the reload (the agent restarted)
	// left this mark: the service still runs the file before, so it is reloaded all the same.
	pending := filepath.Join(stateDir, svc+".reload")
	changed := true
	if cur, err := h.ReadFile(path); err == nil && string(cur) == string(conf) && !h.Exists(pending) {
		changed = false
	}
	if changed && !h.DryRun {
		candidate := path + ".deckhand-new"
		if _, err := h.WriteFile(candidate, conf, 0o644); err != nil {
			return err
		}
		check := []string{"haproxy", "-c", "-q", "-f", candidate}
		if svc == "keepalived" {
			check = []string{"keepalived", "--config-test", "-f", candidate}
		}
		_, err := h.Query(ctx, check...)
		if _, rerr := h.RemoveFile(candidate); rerr != nil {
			e.Logf("remove %s: %v", candidate, rerr)
		}
		if err != nil {
			return tasks.Errorf("LB_CONFIG_INVALID", "report this: Deckhand wrote a configuration "+svc+" refuses; the running one was left as it was", "%s refuses the new configuration: %v", svc, err)
		}
	}
	if changed {
		if _, err := h.WriteFile(pending, nil, 0o600); err != nil {
			return err
		}
	}
	if _, err := h.WriteFile(path, conf, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := h.Query(ctx, "systemctl", "is-enabled", svc); err != nil {
		if err := h.Run(ctx, "enable "+svc+" at boot", "systemctl", "enable", svc); err != nil {
			return tasks.Errorf("SERVICE_FAILED", "look at systemctl status "+svc, "enable %s: %v", svc, err)
		}
	}
	_, inactive := h.Query(ctx, "systemctl", "is-active", svc)
	switch {
	case inactive != nil:
		if err := h.Run(ctx, "start "+svc, "systemctl", "start", svc); err != nil {
			return tasks.Errorf("SERVICE_FAILED", "look at journalctl -u "+svc+" on the node", "start %s: %v", svc, err)
		}
	case changed:
		if err := h.Run(ctx, "reload "+svc+" with its new configuration", "systemctl", "reload", svc); err != nil {
			return tasks.Errorf("SERVICE_FAILED", "look at journalctl -u "+svc+" on the node", "reload %s: %v", svc, err)
		}
	}
	if _, err := h.RemoveFile(pending); err != nil {
		return err
	}
	return nil
}

// keepPackaged moves the configuration a package shipped aside, once: remove puts it back.
func keepPackaged(h *host.Host, svc string) error {
	path, backup := configPath(svc), backupPath(svc)
	if h.Exists(backup) {
		return nil
	}
	cur, err := h.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		cur = nil // nothing shipped: the marker says so
	} else if err != nil {
		return err
	} else if strings.HasPrefix(string(cur), lbconf.Marker) {
		return nil
	}
	_, err = h.WriteFile(backup, cur, 0o600)
	return err
}

// remove stops and disables the services, puts the packaged configuration back (or removes
// Deckhand's when nothing was shipped), and leaves the packages installed.
func remove(ctx context.Context, h *host.Host, e *tasks.Emitter, s *lbconf.Spec) (map[string]string, error) {
	// keepalived first: the address moves to another control plane before haproxy stops.
	svcs := services(lbconf.VIP)
	for i := len(svcs) - 1; i >= 0; i-- {
		svc := svcs[i]
		cur, err := h.ReadFile(configPath(svc))
		ours := err == nil && strings.HasPrefix(string(cur), lbconf.Marker)
		if !ours && !h.Exists(backupPath(svc)) {
			continue // never configured here
		}
		if _, err := h.Query(ctx, "systemctl", "is-active", svc); err == nil {
			if err := h.Run(ctx, "stop "+svc, "systemctl", "stop", svc); err != nil {
				return nil, tasks.Errorf("SERVICE_FAILED", "stop it by hand: systemctl stop "+svc, "stop %s: %v", svc, err)
			}
		}
		if _, err := h.Query(ctx, "systemctl", "is-enabled", svc); err == nil {
			if err := h.Run(ctx, "disable "+svc, "systemctl", "disable", svc); err != nil {
				return nil, tasks.Errorf("SERVICE_FAILED", "disable it by hand: systemctl disable "+svc, "disable %s: %v", svc, err)
			}
		}
		orig, err := h.ReadFile(backupPath(svc))
		switch {
		case err == nil && len(orig) > 0:
			if _, err := h.WriteFile(configPath(svc), orig, 0o644); err != nil {
				return nil, err
			}
		case ours:
			if _, err := h.RemoveFile(configPath(svc)); err != nil {
				return nil, err
			}
		}
		if _, err := h.RemoveFile(backupPath(svc)); err != nil {
			return nil, err
		}
		e.Logf("%s stopped and disabled; its configuration is the package's again", svc)
	}
	if _, err := h.RemoveAll(stateDir); err != nil {
		return nil, err
	}
	return map[string]string{"endpoint": s.Endpoint(), "backends": "0"}, nil
}

// interfaceOf finds the interface holding addr (ip -j addr).
func interfaceOf(ctx context.Context, h *host.Host, addr netip.Addr) (string, error) {
	out, err := h.Query(ctx, "ip", "-j", "-4", "addr", "show")
	if err != nil {
		return "", tasks.Errorf("LB_INTERFACE_NOT_FOUND", "set spec.loadBalancer.interface", "list the node's addresses: %v", err)
	}
	iface, err := InterfaceOf(out, addr)
	if err != nil {
		return "", tasks.Errorf("LB_INTERFACE_NOT_FOUND", "give the node's address in the cluster document (nodes[].address), or spec.loadBalancer.interface", "%v", err)
	}
	return iface, nil
}

// InterfaceOf reads `ip -j -4 addr show` and returns the interface holding addr.
func InterfaceOf(ipJSON []byte, addr netip.Addr) (string, error) {
	var links []struct {
		Name  string `json:"ifname"`
		Addrs []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(ipJSON, &links); err != nil {
		return "", fmt.Errorf("ip -j addr: %w", err)
	}
	for _, l := range links {
		for _, a := range l.Addrs {
			if a.Local == addr.String() {
				if !lbconf.ValidInterface(l.Name) {
					return "", fmt.Errorf("interface %q holding %s is not a name keepalived can be given", l.Name, addr)
				}
				return l.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no interface of this node holds %s", addr)
}

// listening waits until the load balancer accepts connections on its port (haproxy
// accepts before any API server is healthy: this checks haproxy, not the servers).
func listening(ctx context.Context, s *lbconf.Spec) error {
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), s.Port).String()
	deadline := time.Now().Add(listenWithin)
	var d net.Dialer
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(cctx, "tcp", addr)
		cancel()
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return tasks.Errorf("LB_NOT_LISTENING", "look at journalctl -u haproxy on the node", "haproxy does not accept connections on %s within %v: %v", addr, listenWithin, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
