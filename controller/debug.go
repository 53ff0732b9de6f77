package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// checkDebugListen accepts only a loopback host:port for --debug-addr: the profiler shows
// the process's memory and goroutines (secrets included) to whoever can connect, and a
// profile costs CPU, so it is never served beyond the host, nor on the TLS port.
func checkDebugListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--debug-addr %q is not host:port (for example 127.0.0.1:6060)", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--debug-addr %q: the profiler is served on a loopback address only (it exposes the process's memory); give 127.0.0.1:PORT or [::1]:PORT and reach it through SSH from elsewhere", addr)
	}
	return nil
}

// serveDebug serves Go's profiler (/debug/pprof/) on DebugListen until ctx ends.
func (c *Controller) serveDebug(ctx context.Context) {
	ln := c.debugLn
	if ln == nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		c.cfg.Logger.Error("debug server", "err", err)
	}
}

// DebugAddr is the address /debug/pprof/ is served on, or "" when --debug-addr is off.
func (c *Controller) DebugAddr() string {
	if c.debugLn == nil {
		return ""
	}
	return c.debugLn.Addr().String()
}
