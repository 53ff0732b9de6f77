// Package clientconfig reads and writes deckctl's credential file (admin.conf, like
// kubeadm's): controller endpoints, the CA, and a client certificate whose Organization
// carries the role. The file holds a private key, so it is written 0600.
package clientconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"sigs.k8s.io/yaml"
)

const (
	apiVersion = "deckhand.dev/v1"
	kind       = "Config"
)

// Config is the credential file.
type Config struct {
	APIVersion  string   `json:"apiVersion"`
	Kind        string   `json:"kind"`
	Controllers []string `json:"controllers"`
	CA          string   `json:"ca"`
	Certificate string   `json:"certificate"`
	Key         string   `json:"key"`
}

// New builds a config.
func New(controllers []string, caPEM, certPEM, keyPEM []byte) *Config {
	return &Config{APIVersion: apiVersion, Kind: kind, Controllers: controllers, CA: string(caPEM), Certificate: string(certPEM), Key: string(keyPEM)}
}

// Load reads and checks a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("config %s: %v", path, err)
	}
	if c.APIVersion != apiVersion || c.Kind != kind {
		return nil, fmt.Errorf("config %s: apiVersion/kind must be %s/%s", path, apiVersion, kind)
	}
	if len(c.Controllers) == 0 {
		return nil, fmt.Errorf("config %s: controllers is empty: list at least one controller address", path)
	}
	return &c, nil
}

// Write stores the config at path with mode 0600 (its directory 0700 if created),
// atomically: a reader sees the old file or the new one, never a part. A file that exists
// keeps its owner (root updating a file its controller owns leaves it the controller's).
func (c *Config) Write(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("keep the owner (uid %d) of %s: %w", st.Uid, path, err)
			}
		}
	}
	if _, err := tmp.Write(b); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	return nil
}

// TLS is the client TLS configuration for the controllers.
func (c *Config) TLS() (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.CA)) {
		return nil, errors.New("config: ca holds no PEM certificate")
	}
	cert, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key))
	if err != nil {
		return nil, fmt.Errorf("config: certificate/key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// WritePEM writes the CA (ca.crt), the certificate (client.crt) and the key (client.key,
// 0600) into dir (created 0700), for HTTP clients of the REST API such as curl. A file that
// exists is not overwritten: nothing is written then. It returns the paths written.
func (c *Config) WritePEM(dir string) ([]string, error) {
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{{"ca.crt", c.CA, 0o644}, {"client.crt", c.Certificate, 0o644}, {"client.key", c.Key, 0o600}}
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
			return nil, fmt.Errorf("%s already exists: remove it or choose another directory", filepath.Join(dir, f.name))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return out, err
		}
		_, err = fh.WriteString(f.data)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}
