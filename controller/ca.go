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

// writeLocalCA stores the CA in DataDir/pki (files 0600, directory 0700), all or nothing: the
// files are written and synced in a temporary directory that is then renamed into place, so
// a crash never leaves half a CA.
func writeLocalCA(dir string, ca *pki.CA) error {
	p := filepath.Join(dir, "pki")
	tmp := filepath.Join(dir, ".pki.tmp")
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	for name, f := range map[string]struct {
		data []byte
		mode os.FileMode
	}{"ca.key": {ca.KeyPEM, 0o600}, "ca.crt": {ca.CertPEM, 0o600}} {
		if err := writeSynced(filepath.Join(tmp, name), f.data, f.mode); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("write the CA: %w", err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("install the CA in %s: %w", p, err)
	}
	return nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func statusMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
