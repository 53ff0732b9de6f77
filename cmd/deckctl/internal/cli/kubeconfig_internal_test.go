package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// deckctl writes a kubeconfig only for the certificate it asked for: its key, its user and
// its groups (the groups are the rights).
func TestCheckIssuedRefusesOtherGroups(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	user, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issue := func(cn string, org []string) *apiv1.CreateKubeconfigResponse {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: org},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &user.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return &apiv1.CreateKubeconfigResponse{Server: "https://10.0.0.1:6443", ClusterName: "kubernetes",
			CertificatePem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			CaPem:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	}
	for _, c := range []struct {
		name      string
		issuedOrg []string
		asked     []string
		wantErr   string
	}{
		{"admin as asked", []string{"kubeadm:cluster-admins"}, []string{"kubeadm:cluster-admins"}, ""},
		{"view as asked", nil, []string{}, ""},
		{"view asked, admin issued", []string{"kubeadm:cluster-admins"}, []string{}, "groups"},
		{"admin asked, no group issued", nil, []string{"kubeadm:cluster-admins"}, "groups"},
	} {
		err := checkIssued(issue("alice", c.issuedOrg), &user.PublicKey, "alice", c.asked)
		if (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want error containing %q", c.name, err, c.wantErr)
		}
	}
}
