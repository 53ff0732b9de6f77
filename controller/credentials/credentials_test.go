package credentials_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/deckhandhq/deckhand/controller/credentials"
	"github.com/deckhandhq/deckhand/internal/pki"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Revoked credentials keep their name until they expire; then their record goes and the
// name is free again, so routine rotation does not grow the records forever.
func TestExpiredCredentialsAreDeletedAndTheirNameFreed(t *testing.T) {
	c := testcluster.New(t, 1)
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	m := credentials.New(c.Controllers[0].Store(), func() *pki.CA { return ca }, clk.Now, testcluster.Logger())
	ctx := context.Background()
	_, csr, _ := pki.NewKeyAndCSR("ci")
	first, _, err := m.Create(ctx, "ci", pki.RoleOperator, time.Hour, csr, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revoke(ctx, first.GetSerial()); err != nil {
		t.Fatalf("revoke by serial: %v", err)
	}
	if revoked, err := m.Revoked(ctx, first.GetSerial()); err != nil || !revoked {
		t.Fatalf("revoked: %v %v", revoked, err)
	}
	if _, _, err := m.Create(ctx, "ci", pki.RoleOperator, time.Hour, csr, "admin"); !errors.Is(err, credentials.ErrExists) {
		t.Fatalf("a revoked, unexpired name was reused: %v", err)
	}
	clk.Add(2 * time.Hour) // the certificate expired: no handshake accepts it
	second, _, err := m.Create(ctx, "ci", pki.RoleOperator, time.Hour, csr, "admin")
	if err != nil {
		t.Fatalf("the name of an expired credential: %v", err)
	}
	all, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range all {
		if cr.GetSerial() == first.GetSerial() {
			t.Fatalf("the expired record is still there: %v", all)
		}
	}
	if second.GetRevoked() || second.GetSerial() == first.GetSerial() {
		t.Fatalf("new credential: %v", second)
	}
}

// The calls held open with a credential end when it is revoked; released ones are left
// alone, and a call held after the revocation ends at once.
func TestRevokeEndsTheCallsHeldWithTheCredential(t *testing.T) {
	c := testcluster.New(t, 1)
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	m := credentials.New(c.Controllers[0].Store(), func() *pki.CA { return ca }, nil, testcluster.Logger())
	ctx := context.Background()
	_, csr, _ := pki.NewKeyAndCSR("ci")
	cred, _, err := m.Create(ctx, "ci", pki.RoleViewer, time.Hour, csr, "admin")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ended := map[string]bool{}
	end := func(name string) func() {
		return func() { mu.Lock(); ended[name] = true; mu.Unlock() }
	}
	m.Hold(cred.GetSerial(), end("open"))
	m.Hold("other-serial", end("other"))
	release := m.Hold(cred.GetSerial(), end("released"))
	release()
	if _, err := m.Revoke(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	m.Hold(cred.GetSerial(), end("after"))
	mu.Lock()
	defer mu.Unlock()
	if !ended["open"] || !ended["after"] || ended["other"] || ended["released"] {
		t.Fatalf("calls ended: %v; want open and after only", ended)
	}
}
