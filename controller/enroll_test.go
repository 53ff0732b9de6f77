package controller_test

import (
	"context"
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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

// TestEnrollingATakenNameCostsNoTokenUse: the refusal comes before the use is spent, so a
// two-use token still enrolls a second node after a mistaken name.
func TestEnrollingATakenNameCostsNoTokenUse(t *testing.T) {
	c := testcluster.New(t, 1)
	token := c.CreateToken(2)
	if _, err := c.StartAgent(c.AgentConfig("node-x", token)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.StartAgent(c.AgentConfig("node-x", token)); err == nil || !strings.Contains(err.Error(), "already enrolled") {
			t.Fatalf("enrolling a taken name: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := apiv1.NewTokenServiceClient(c.Client()).ListTokens(ctx, &apiv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range list.GetTokens() {
		if strings.HasPrefix(token, tok.GetId()+".") && tok.GetUsagesUsed() != 1 {
			t.Fatalf("token %s shows %d of 2 uses after one enrollment and three refusals", tok.GetId(), tok.GetUsagesUsed())
		}
	}
	if _, err := c.StartAgent(c.AgentConfig("node-y", token)); err != nil {
		t.Fatalf("the token's second use: %v", err)
	}
}

// TestAnUnknownRoleIsNamedAsSuch: a CA-signed certificate whose role Deckhand does not know
// is refused with that reason and the list of roles, not as if it were not CA-signed.
func TestAnUnknownRoleIsNamedAsSuch(t *testing.T) {
	c := testcluster.New(t, 1)
	certPEM, _ := readFile(t, c.Controllers[0].Dir, "pki/ca.crt")
	caKeyPEM, _ := readFile(t, c.Controllers[0].Dir, "pki/ca.key")
	ca, err := pki.LoadCA(certPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(424242),
		Subject:      pkix.Name{CommonName: "mallory", Organization: []string{"superuser"}},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cfg, err := clientconfig.New(nil, ca.CertPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})).TLS()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = apiv1.NewNodeServiceClient(dialWith(t, c.Addrs()[0], cfg)).ListNodes(ctx, &apiv1.ListNodesRequest{})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(msg, `role "superuser" is unknown`) ||
		!strings.Contains(msg, "admin, operator, viewer, agent, replica") || strings.Contains(msg, "signed by the controller CA is required") {
		t.Fatalf("a CA-signed certificate with role superuser: %v", err)
	}
}
