package facts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// issue makes a certificate of cn signed by parent (self-signed when parent is nil) valid
// until notAfter, and returns it with its key, both PEM.
func issue(t *testing.T, cn string, ca bool, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter, IsCA: ca, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	return cert, key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

// A control plane reports its kubeadm certificates (files and kubeconfigs) and the
// kubelet's, with their real expiry, issuer and who renews each; never a key; a file that
// holds no certificate is left out.
func TestCollectCertificates(t *testing.T) {
	root := t.TempDir()
	now := time.Now().Truncate(time.Second)
	ca, caKey, caPEM, _ := issue(t, "kubernetes", true, now.Add(10*365*24*time.Hour), nil, nil)
	_, _, apiPEM, _ := issue(t, "kube-apiserver", false, now.Add(300*24*time.Hour), ca, caKey)
	_, _, adminPEM, adminKey := issue(t, "kubernetes-admin", false, now.Add(20*24*time.Hour), ca, caKey)
	_, _, kubeletPEM, kubeletKey := issue(t, "system:node:node-1", false, now.Add(200*24*time.Hour), ca, caKey)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	admin := "apiVersion: v1\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: " + b64(adminPEM) +
		"\n    client-key-data: " + b64(adminKey) + "\n"
	writeTree(t, root, map[string]string{
		"etc/kubernetes/pki/ca.crt":                      caPEM,
		"etc/kubernetes/pki/apiserver.crt":               apiPEM,
		"etc/kubernetes/admin.conf":                      admin,
		"etc/kubernetes/pki/front-proxy-client.crt":      "not a certificate\n",
		"var/lib/kubelet/pki/kubelet-client-current.pem": kubeletPEM + kubeletKey,
		"var/lib/kubelet/config.yaml":                    "kind: KubeletConfiguration\nrotateCertificates: true\n",
	})
	c := &Collector{Root: root}
	got := c.certificates()
	byName := map[string]int{}
	for i, cert := range got {
		byName[cert.GetName()] = i
		if s := cert.String(); strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, b64(adminKey)[:40]) {
			t.Fatalf("a certificate fact carries a key: %s", s)
		}
	}
	for _, want := range []struct {
		name, issuer, subject, renewedBy string
		ca                               bool
		notAfter                         time.Time
	}{
		{"admin.conf", "kubernetes", "kubernetes-admin", "kubeadm", false, now.Add(20 * 24 * time.Hour)},
		{"apiserver", "kubernetes", "kube-apiserver", "kubeadm", false, now.Add(300 * 24 * time.Hour)},
		{"ca", "kubernetes", "kubernetes", "", true, now.Add(10 * 365 * 24 * time.Hour)},
		{"kubelet-client", "kubernetes", "system:node:node-1", "kubelet", false, now.Add(200 * 24 * time.Hour)},
	} {
		i, ok := byName[want.name]
		if !ok {
			t.Errorf("no certificate %s in %v", want.name, got)
			continue
		}
		g := got[i]
		if g.GetIssuer() != want.issuer || g.GetSubject() != want.subject || g.GetRenewedBy() != want.renewedBy || g.GetCa() != want.ca ||
			!g.GetNotAfter().AsTime().Equal(want.notAfter.UTC()) {
			t.Errorf("%s: %v, want issuer %s, subject %s, renewed by %q, CA %v, not after %v", want.name, g, want.issuer, want.subject, want.renewedBy, want.ca, want.notAfter)
		}
	}
	if len(got) != 4 {
		t.Errorf("certificates: %d, want the 4 the node has (front-proxy-client holds none):\n%v", len(got), got)
	}
	if rotates, known := c.kubeletRotates(); !rotates || !known {
		t.Errorf("kubelet rotation: %v %v, want on", rotates, known)
	}

	// A worker before it joined: nothing.
	if got := (&Collector{Root: t.TempDir()}).certificates(); len(got) != 0 {
		t.Errorf("a bare host reports certificates: %v", got)
	}
}
