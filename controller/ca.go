package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/pki"
)

// loadLocalCA reads DataDir/pki/ca.{crt,key}; (nil, nil) when there is none.
func loadLocalCA(dir string) (*pki.CA, error) {
	certPath, keyPath := filepath.Join(dir, "pki", "ca.crt"), filepath.Join(dir, "pki", "ca.key")
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w; restore it from a backup of this replica", keyPath, err)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "pki"), err)
	}
	return ca, nil
}

// writeLocalCA stores the CA in DataDir/pki (key 0600, directory 0700).
func writeLocalCA(dir string, ca *pki.CA) error {
	p := filepath.Join(dir, "pki")
	if err := os.MkdirAll(p, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if err := os.WriteFile(filepath.Join(p, "ca.key"), ca.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(p, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

func statusMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
