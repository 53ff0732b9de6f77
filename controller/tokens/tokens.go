// Package tokens manages bootstrap tokens ("[a-z0-9]{6}.[a-z0-9]{16}", as kubeadm's): an
// agent enrolls with one, a replica joins with one. Only a SHA-256 of the secret part is
// stored; tokens expire and can be limited in uses, and a use is counted atomically.
package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	clusterv1 "github.com/deckhandhq/deckhand/proto/deckhand/cluster/v1"
	"github.com/deckhandhq/deckhand/store"
)

const (
	prefix = "/tokens/"
	// DefaultTTL is a token's lifetime when none is given.
	DefaultTTL = time.Hour
	// MaxTTL is the longest lifetime a token may have.
	MaxTTL = 7 * 24 * time.Hour
)

var (
	// ErrInvalid: the token is malformed, unknown, revoked, expired or used up.
	ErrInvalid = errors.New("token invalid")
	// ErrNotFound: no token with that ID.
	ErrNotFound = errors.New("token not found")
	// ErrBadRequest: a create parameter is out of range.
	ErrBadRequest = errors.New("bad token request")

	tokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)
	idRE    = regexp.MustCompile(`^[a-z0-9]{6}$`)
)

// Manager creates, lists, revokes and consumes tokens in the store.
type Manager struct {
	st  store.Store
	now func() time.Time
}

// New returns a Manager over st. now may be nil (time.Now).
func New(st store.Store, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{st: st, now: now}
}

// Create makes a token and returns its record and the full secret "id.secret".
func (m *Manager) Create(ctx context.Context, purpose apiv1.TokenPurpose, ttl time.Duration, usages uint32, description string) (*apiv1.EnrollmentToken, string, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Minute || ttl > MaxTTL {
		return nil, "", fmt.Errorf("%w: ttl %v is out of range: use between 1m and %v", ErrBadRequest, ttl, MaxTTL)
	}
	if len(description) > 256 {
		return nil, "", fmt.Errorf("%w: description is %d characters long: keep it under 256", ErrBadRequest, len(description))
	}
	if purpose == apiv1.TokenPurpose_TOKEN_PURPOSE_UNSPECIFIED {
		purpose = apiv1.TokenPurpose_TOKEN_PURPOSE_AGENT
	}
	for {
		id, secret := randomString(6), randomString(16)
		now := m.now()
		tok := &apiv1.EnrollmentToken{
			Id:            id,
			Description:   description,
			Created:       timestamppb.New(now),
			Expires:       timestamppb.New(now.Add(ttl)),
			UsagesAllowed: usages,
			Purpose:       purpose,
		}
		sum := sha256.Sum256([]byte(secret))
		b, err := proto.Marshal(&clusterv1.TokenRecord{Token: tok, SecretSha256: sum[:]})
		if err != nil {
			return nil, "", err
		}
		_, err = m.st.Txn(ctx, store.Txn{If: []store.Compare{store.Absent(prefix + id)}, Then: []store.Op{store.Put(prefix+id, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue // an ID collision: draw again
		}
		if err != nil {
			return nil, "", fmt.Errorf("create token: %w", err)
		}
		return tok, id + "." + secret, nil
	}
}

// List returns every token (without secrets), expired ones included.
func (m *Manager) List(ctx context.Context) ([]*apiv1.EnrollmentToken, error) {
	kvs, _, err := m.st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]*apiv1.EnrollmentToken, 0, len(kvs))
	for _, kv := range kvs {
		var rec clusterv1.TokenRecord
		if err := proto.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("token %s: %w", kv.Key, err)
		}
		out = append(out, rec.GetToken())
	}
	return out, nil
}

// Revoke deletes a token so it can no longer be used.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w: id %q: a token ID is 6 characters of a-z and 0-9 (the part before the dot)", ErrBadRequest, id)
	}
	kv, _, err := m.st.Get(ctx, prefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s; deckctl token list shows the tokens", ErrNotFound, id)
	}
	if err != nil {
		return err
	}
	_, err = m.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(kv.Key, kv.ModRevision)}, Then: []store.Op{store.Delete(kv.Key)}})
	return err
}

// Check verifies a presented token for purpose without counting a use, so a request can be
// refused for another reason (a name already taken) before it costs one. Every refusal
// wraps ErrInvalid with a message that says why and what to do.
func (m *Manager) Check(ctx context.Context, presented string, purpose apiv1.TokenPurpose) (*apiv1.EnrollmentToken, error) {
	_, rec, err := m.load(ctx, presented, purpose)
	if err != nil {
		return nil, err
	}
	return rec.GetToken(), nil
}

// Consume checks a presented token for purpose and counts one use. Every refusal wraps
// ErrInvalid with a message that says why and what to do.
func (m *Manager) Consume(ctx context.Context, presented string, purpose apiv1.TokenPurpose) (*apiv1.EnrollmentToken, error) {
	for {
		kv, rec, err := m.load(ctx, presented, purpose)
		if err != nil {
			return nil, err
		}
		tok := rec.GetToken()
		tok.UsagesUsed++
		b, err := proto.Marshal(rec)
		if err != nil {
			return nil, err
		}
		_, err = m.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(kv.Key, kv.ModRevision)}, Then: []store.Op{store.Put(kv.Key, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue // a concurrent use: re-check the count
		}
		if err != nil {
			return nil, err
		}
		return tok, nil
	}
}

// Refund gives back the use Consume counted for presented, when the request it paid for
// was refused after all (the name was taken meanwhile). A token that is gone stays gone.
func (m *Manager) Refund(ctx context.Context, presented string) error {
	match := tokenRE.FindStringSubmatch(presented)
	if match == nil {
		return nil
	}
	for {
		kv, _, err := m.st.Get(ctx, prefix+match[1])
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var rec clusterv1.TokenRecord
		if err := proto.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("token %s: %w", match[1], err)
		}
		if rec.GetToken().GetUsagesUsed() == 0 {
			return nil
		}
		rec.Token.UsagesUsed--
		b, err := proto.Marshal(&rec)
		if err != nil {
			return err
		}
		_, err = m.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(kv.Key, kv.ModRevision)}, Then: []store.Op{store.Put(kv.Key, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

// load reads and verifies a presented token: its record and the record's key-value.
func (m *Manager) load(ctx context.Context, presented string, purpose apiv1.TokenPurpose) (*store.KV, *clusterv1.TokenRecord, error) {
	match := tokenRE.FindStringSubmatch(presented)
	if match == nil {
		return nil, nil, fmt.Errorf("%w: the token is malformed: it looks like abcdef.0123456789abcdef (6 and 16 characters of a-z, 0-9)", ErrInvalid)
	}
	id, secret := match[1], match[2]
	kv, _, err := m.st.Get(ctx, prefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: token %s is unknown or was revoked; create one with deckctl token create", ErrInvalid, id)
	}
	if err != nil {
		return nil, nil, err
	}
	var rec clusterv1.TokenRecord
	if err := proto.Unmarshal(kv.Value, &rec); err != nil {
		return nil, nil, fmt.Errorf("token %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], rec.GetSecretSha256()) != 1 {
		return nil, nil, fmt.Errorf("%w: token %s is unknown or was revoked; create one with deckctl token create", ErrInvalid, id)
	}
	tok := rec.GetToken()
	if tok.GetPurpose() != purpose {
		return nil, nil, fmt.Errorf("%w: token %s is for %s, not %s; create one with deckctl token create --purpose %s", ErrInvalid, id, PurposeName(tok.GetPurpose()), PurposeName(purpose), PurposeName(purpose))
	}
	if !m.now().Before(tok.GetExpires().AsTime()) {
		return nil, nil, fmt.Errorf("%w: token %s expired at %s; create a new one with deckctl token create", ErrInvalid, id, tok.GetExpires().AsTime().UTC().Format(time.RFC3339))
	}
	if tok.GetUsagesAllowed() > 0 && tok.GetUsagesUsed() >= tok.GetUsagesAllowed() {
		return nil, nil, fmt.Errorf("%w: token %s is used up (%d of %d uses); create a new one with deckctl token create", ErrInvalid, id, tok.GetUsagesUsed(), tok.GetUsagesAllowed())
	}
	return kv, &rec, nil
}

// PurposeName is the lower-case name of a purpose, as deckctl spells it.
func PurposeName(p apiv1.TokenPurpose) string {
	switch p {
	case apiv1.TokenPurpose_TOKEN_PURPOSE_CONTROLLER:
		return "controller"
	default:
		return "agent"
	}
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}
