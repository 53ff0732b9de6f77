package agent

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestRenewAtTwoThirdsOfTheLifetime(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		life time.Duration
		want time.Duration
	}{
		{365 * 24 * time.Hour, 2 * 365 * 24 * time.Hour / 3},
		{3 * time.Second, 2 * time.Second},
	} {
		cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(tc.life)}
		if got := renewAt(cert).Sub(start); got != tc.want {
			t.Errorf("lifetime %v: renew after %v, want %v", tc.life, got, tc.want)
		}
	}
}
