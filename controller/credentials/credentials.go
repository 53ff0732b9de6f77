// Package credentials issues and revokes user credentials: deckctl config files (the format
// of admin.conf) for a named person or tool with a role, signed by the controller CA from a
// CSR made on the user's machine. Each issued certificate is recorded by name with its
// serial; a revoked serial is refused on every call, and the streams it holds open end. The
// set of revoked serials is kept in memory from a watch on the records, so the auth check
// reads no store.
package credentials

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/internal/clientconfig"
	"github.com/deckhandhq/deckhand/internal/pki"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Prefix is where credential records live, one per name.
const Prefix = "/credentials/"

var (
	// ErrNotFound: no credential by that name or serial.
	ErrNotFound = errors.New("credential not found")
	// ErrExists: the name is taken (revoked credentials keep their name).
	ErrExists = errors.New("credential exists")
	// ErrNotLoaded: the revocation list is not loaded yet; retry.
	ErrNotLoaded = errors.New("the credential revocation list is not loaded yet")
	// ErrTooMany: MaxCredentials unexpired credentials are recorded.
	ErrTooMany = errors.New("too many credentials")
)

// MaxCredentials bounds the credential records that are not expired (valid or revoked); an
// expired credential's record is deleted when the next one is created.
const MaxCredentials = 10_000

// Manager creates, lists and revokes credentials and answers whether a serial is revoked.
type Manager struct {
	st  store.Store
	ca  func() *pki.CA
	now func() time.Time
	log *slog.Logger

	mu      sync.RWMutex
	loaded  bool
	revoked map[string]bool // serial → revoked
	// Streams open on this replica by serial, ended when their credential is revoked.
	held   map[string]map[uint64]func()
	nextID uint64
}

// New returns a Manager over st signing with ca. now may be nil (time.Now).
func New(st store.Store, ca func() *pki.CA, now func() time.Time, log *slog.Logger) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{st: st, ca: ca, now: now, log: log, revoked: map[string]bool{}, held: map[string]map[uint64]func(){}}
}

// Hold registers cancel, which ends a call (a stream) made with the certificate serial,
// until release is called: when serial is revoked, on this replica or another (seen by
// Run's watch), cancel is called. A serial already revoked is cancelled at once.
func (m *Manager) Hold(serial string, cancel func()) (release func()) {
	m.mu.Lock()
	if m.revoked[serial] {
		m.mu.Unlock()
		cancel()
		return func() {}
	}
	m.nextID++
	id := m.nextID
	if m.held[serial] == nil {
		m.held[serial] = map[uint64]func(){}
	}
	m.held[serial][id] = cancel
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.held[serial], id)
		if len(m.held[serial]) == 0 {
			delete(m.held, serial)
		}
		m.mu.Unlock()
	}
}

// cutLocked takes the held calls of the revoked serials; the caller runs them after
// unlocking m.mu.
func (m *Manager) cutLocked() []func() {
	var out []func()
	for serial, calls := range m.held {
		if !m.revoked[serial] {
			continue
		}
		for _, cancel := range calls {
			out = append(out, cancel)
		}
		delete(m.held, serial)
	}
	return out
}

func run(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// Create signs csrPEM for name with role, valid for ttl, and records it.
func (m *Manager) Create(ctx context.Context, name, role string, ttl time.Duration, csrPEM []byte, by string) (*apiv1.Credential, []byte, error) {
	if err := clientconfig.CheckCredential(name, role, ttl); err != nil {
		return nil, nil, err
	}
	if err := pki.CheckCSR(csrPEM); err != nil {
		return nil, nil, &clientconfig.FieldError{Field: "csr_pem", Msg: err.Error()}
	}
	if err := m.makeRoom(ctx, name); err != nil {
		return nil, nil, err
	}
	certPEM, serial, err := m.ca().SignCSR(csrPEM, name, role, ttl)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the credential: %w", err)
	}
	cert, err := pki.ParseCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	cred := &apiv1.Credential{Name: name, Role: role, Serial: serial, Created: timestamppb.New(m.now()), Expires: timestamppb.New(cert.NotAfter), CreatedBy: by}
	b, err := proto.Marshal(cred)
	if err != nil {
		return nil, nil, err
	}
	if _, err := m.st.Txn(ctx, store.Txn{If: []store.Compare{store.Absent(Prefix + name)}, Then: []store.Op{store.Put(Prefix+name, b)}}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nil, fmt.Errorf("%w: %s was just created by someone else: choose another --name", ErrExists, name)
		}
		return nil, nil, err
	}
	return cred, certPEM, nil
}

// makeRoom deletes the records of expired credentials (no TLS handshake accepts them any
// more), then refuses a name that is taken or a credential beyond MaxCredentials.
func (m *Manager) makeRoom(ctx context.Context, name string) error {
	kvs, _, err := m.st.List(ctx, Prefix)
	if err != nil {
		return err
	}
	var expired []store.Op
	live := 0
	for _, kv := range kvs {
		c, err := decode(kv)
		if err != nil {
			return err
		}
		if c.GetExpires().AsTime().Before(m.now()) {
			expired = append(expired, store.Delete(kv.Key))
			continue
		}
		live++
		if c.GetName() == name {
			return fmt.Errorf("%w: %s already exists until it expires on %s (revoked credentials keep their name): choose another --name", ErrExists, name, c.GetExpires().AsTime().UTC().Format(time.RFC3339))
		}
	}
	if len(expired) > 0 {
		if _, err := m.st.Txn(ctx, store.Txn{Then: expired}); err != nil {
			return err
		}
		m.log.Info("deleted the records of expired credentials", "count", len(expired))
	}
	if live >= MaxCredentials {
		return fmt.Errorf("%w: %d credentials are valid or revoked but not expired (at most %d); records are deleted once their certificate expires", ErrTooMany, live, MaxCredentials)
	}
	return nil
}

// Record lists a certificate issued outside Create (a controller's admin.conf) so it can be
// revoked like the others: under name, or name-SERIAL when that is taken by another one.
// Recording a serial twice does nothing.
func (m *Manager) Record(ctx context.Context, name, role string, cert *x509.Certificate, by string) error {
	all, err := m.List(ctx)
	if err != nil {
		return err
	}
	name = name[:min(len(name), maxNameLen)]
	serial := pki.SerialHex(cert)
	taken := false
	for _, c := range all {
		if c.GetSerial() == serial {
			return nil
		}
		taken = taken || c.GetName() == name
	}
	if taken {
		name = name[:min(len(name), maxNameLen-9)] + "-" + serial[:min(len(serial), 8)]
	}
	cred := &apiv1.Credential{Name: name, Role: role, Serial: serial, Created: timestamppb.New(cert.NotBefore), Expires: timestamppb.New(cert.NotAfter), CreatedBy: by}
	b, err := proto.Marshal(cred)
	if err != nil {
		return err
	}
	_, err = m.st.Txn(ctx, store.Txn{If: []store.Compare{store.Absent(Prefix + name)}, Then: []store.Op{store.Put(Prefix+name, b)}})
	return err
}

// maxNameLen is the longest credential name (clientconfig.CheckCredential).
const maxNameLen = 63

// List returns every credential in name order.
func (m *Manager) List(ctx context.Context) ([]*apiv1.Credential, error) {
	kvs, _, err := m.st.List(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	out := make([]*apiv1.Credential, 0, len(kvs))
	for _, kv := range kvs {
		c, err := decode(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Revoke marks the credential named nameOrSerial (or with that serial) revoked.
func (m *Manager) Revoke(ctx context.Context, nameOrSerial string) (*apiv1.Credential, error) {
	for {
		all, _, err := m.st.List(ctx, Prefix)
		if err != nil {
			return nil, err
		}
		var kv *store.KV
		var cred *apiv1.Credential
		for _, k := range all {
			c, err := decode(k)
			if err != nil {
				return nil, err
			}
			if c.GetName() == nameOrSerial || strings.EqualFold(c.GetSerial(), nameOrSerial) {
				kv, cred = k, c
				break
			}
		}
		if cred == nil {
			return nil, fmt.Errorf("%w: no credential named %q or with that serial; deckctl credentials list shows them", ErrNotFound, nameOrSerial)
		}
		if cred.GetRevoked() {
			return cred, nil
		}
		cred.Revoked = true
		cred.RevokedAt = timestamppb.New(m.now())
		b, err := proto.Marshal(cred)
		if err != nil {
			return nil, err
		}
		_, err = m.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(kv.Key, kv.ModRevision)}, Then: []store.Op{store.Put(kv.Key, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m.setRevoked(cred) // this replica refuses it at once; the others when their watch sees it
		return cred, nil
	}
}

// Revoked reports whether serial belongs to a revoked credential. Before the first load it
// reads this replica's copy of the records.
func (m *Manager) Revoked(ctx context.Context, serial string) (bool, error) {
	m.mu.RLock()
	loaded, revoked := m.loaded, m.revoked[serial]
	m.mu.RUnlock()
	if loaded {
		return revoked, nil
	}
	kvs, _, err := m.st.List(ctx, Prefix, store.Stale())
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrNotLoaded, err)
	}
	for _, kv := range kvs {
		if c, err := decode(kv); err == nil && c.GetSerial() == serial {
			return c.GetRevoked(), nil
		}
	}
	return false, nil
}

// Run keeps the revoked set current from a watch on the records until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	store.Follow(ctx, m.st, Prefix, store.Follower{
		Listed: m.reset,
		Event: func(ev store.Event) {
			if ev.Type == store.EventPut {
				if c, err := decode(ev.KV); err == nil {
					m.setRevoked(c)
				}
			}
		},
		Failed: func(err error) { m.log.Warn("loading the credential revocation list failed; retrying", "err", err) },
	})
}

func (m *Manager) reset(kvs []*store.KV) {
	revoked := map[string]bool{}
	for _, kv := range kvs {
		if c, err := decode(kv); err == nil && c.GetRevoked() {
			revoked[c.GetSerial()] = true
		}
	}
	m.mu.Lock()
	m.revoked, m.loaded = revoked, true
	cut := m.cutLocked()
	m.mu.Unlock()
	run(cut)
}

func (m *Manager) setRevoked(c *apiv1.Credential) {
	if !c.GetRevoked() {
		return
	}
	m.mu.Lock()
	m.revoked[c.GetSerial()] = true
	cut := m.cutLocked()
	m.mu.Unlock()
	if len(cut) > 0 {
		m.log.Info("ending the open calls of a revoked credential", "name", c.GetName(), "serial", c.GetSerial(), "calls", len(cut))
	}
	run(cut)
}

func decode(kv *store.KV) (*apiv1.Credential, error) {
	var c apiv1.Credential
	if err := proto.Unmarshal(kv.Value, &c); err != nil {
		return nil, fmt.Errorf("credential record %s: %w", kv.Key, err)
	}
	return &c, nil
}
