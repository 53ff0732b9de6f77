package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

// selfSigned is a PEM certificate of cn valid until notAfter.
func selfSigned(t *testing.T, cn string, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// A node's certificates reach deckctl certs through its agent's facts, read again every
// --facts-interval between tasks: a certificate that appears (or changes) on the host is
// listed with its expiry; one under 30 days is flagged by deckctl certs and deckctl nodes
// with what renews it.
func TestCertsListsTheNodesCertificates(t *testing.T) {
	c := testcluster.New(t, 1)
	cfg := c.AgentConfig("cp-1", c.CreateToken(1))
	cfg.FactsInterval = time.Second
	if _, err := c.StartAgent(cfg); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(12 * 24 * time.Hour).Truncate(time.Second)
	pki := filepath.Join(cfg.Root, "etc/kubernetes/pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pki, "apiserver.crt"), []byte(selfSigned(t, "kube-apiserver", expires)), 0o644); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 30*time.Second, func() error {
		out, err := deckctlAs(c, c.AdminConfig(), "certs", "--node", "cp-1", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		var v struct {
			Certificates []struct {
				Kind, Node, Name, RenewedBy, Issuer string
				Expires                             time.Time
			}
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return err
		}
		for _, r := range v.Certificates {
			if r.Kind == "node" && r.Node == "cp-1" && r.Name == "apiserver" && r.Expires.Equal(expires) && r.RenewedBy == "kubeadm" && r.Issuer == "kube-apiserver" {
				return nil
			}
		}
		return fmt.Errorf("deckctl certs --node cp-1 does not list the apiserver certificate expiring %v:\n%s", expires, out)
	})
	// The controllers export it for alerting.
	if v, err := c.Metric(0, "deckhand_certificate_expiry_timestamp_seconds", "node", "cp-1", "cert", "apiserver"); err != nil || int64(v) != expires.Unix() {
		t.Fatalf("deckhand_certificate_expiry_timestamp_seconds{node=cp-1,cert=apiserver} = %v (%v), want %d", v, err, expires.Unix())
	}
	out, err := deckctlAs(c, c.AdminConfig(), "certs")
	if err != nil || !regexp.MustCompile(`(?m)^cp-1\s+apiserver\s+2a\s+\S+\s+1[12]d\s+kubeadm$`).MatchString(out) ||
		!strings.Contains(out, "warning: cp-1's certificate apiserver expires in 1") || !strings.Contains(out, "deckctl certs renew --node cp-1") {
		t.Fatalf("deckctl certs:\n%v %s", err, out)
	}
	if out, err := deckctlAs(c, c.AdminConfig(), "nodes"); err != nil || !strings.Contains(out, "warning: cp-1's certificate apiserver expires in 1") {
		t.Fatalf("deckctl nodes does not warn of the certificate under 30 days:\n%v %s", err, out)
	}
	// A kubelet that does not rotate its own client certificate is flagged too.
	if err := os.MkdirAll(filepath.Join(cfg.Root, "var/lib/kubelet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Root, "var/lib/kubelet/config.yaml"), []byte("kind: KubeletConfiguration\nrotateCertificates: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 30*time.Second, func() error {
		if out, err := deckctlAs(c, c.AdminConfig(), "certs"); err != nil || !strings.Contains(out, "warning: cp-1's kubelet does not rotate its client certificate") {
			return fmt.Errorf("deckctl certs does not flag the kubelet without rotation: %v\n%s", err, out)
		}
		return nil
	})
	if out, err := deckctlAs(c, c.AdminConfig(), "certs", "--node", "cp-9"); err == nil || !strings.Contains(out+err.Error(), "--node cp-9: no such node") {
		t.Fatalf("deckctl certs --node cp-9: %v %s", err, out)
	}
}
