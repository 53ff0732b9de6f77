// Package loadutil holds what the load generators (scripts/agentload, scripts/applyload,
// scripts/fanoutload, scripts/failoverload) share: free ports, the controller process's CPU
// and memory from /proc, polling, simulated agents (SimAgent) that enroll and hold sessions
// against real controller processes, and a controller with its simulated agents all Ready
// (StartSimCluster).
package loadutil

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/deckhandhq/deckhand/internal/backoff"
	"github.com/deckhandhq/deckhand/internal/pki"
)

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// MustCert parses a PEM certificate or panics.
func MustCert(caPEM string) *x509.Certificate {
	c, err := pki.ParseCert([]byte(caPEM))
	if err != nil {
		panic(err)
	}
	return c
}

// CPUTicks is the user plus system CPU time of pid, in clock ticks.
func CPUTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// StatusMiB reads a kB field of /proc/PID/status ("VmRSS:", "VmHWM:" for the peak) in MiB.
func StatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// Poll calls cond every 100 ms until it returns nil or timeout passes.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Wait waits d or until ctx ends; false when ctx ended.
func Wait(ctx context.Context, d time.Duration) bool { return backoff.Sleep(ctx, d) }
