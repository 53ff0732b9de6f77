// Package nodes is the inventory of enrolled hosts: one record per node name in the store,
// holding the node's facts, its liveness state (written by the leader on transitions only),
// and the serial of its current certificate.
package nodes

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	"github.com/deckhandhq/deckhand/store"
)

// Prefix is where node records live.
const Prefix = "/nodes/"

var (
	// ErrNotFound: no node by that name.
	ErrNotFound = errors.New("node not found")
	// ErrNameTaken: the name is enrolled by another machine.
	ErrNameTaken = errors.New("node name taken")
	// ErrInvalidName: the name is not an RFC 1123 label.
	ErrInvalidName = errors.New("invalid node name")

	nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// ValidateName checks that name is an RFC 1123 label, as Kubernetes node names must be.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q must be an RFC 1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", ErrInvalidName, name)
	}
	return nil
}

// Registry reads and writes node records.
type Registry struct {
	st  store.Store
	now func() time.Time
}

// New returns a Registry over st. now may be nil (time.Now).
func New(st store.Store, now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	return &Registry{st: st, now: now}
}

// Decode parses a stored node record.
func Decode(kv *store.KV) (*apiv1.Node, error) {
	var n apiv1.Node
	if err := proto.Unmarshal(kv.Value, &n); err != nil {
		return nil, fmt.Errorf("node record %s: %w", kv.Key, err)
	}
	return &n, nil
}

// Get returns the node and its record's revision.
func (r *Registry) Get(ctx context.Context, name string, opts ...store.ReadOption) (*apiv1.Node, int64, error) {
	kv, _, err := r.st.Get(ctx, Prefix+name, opts...)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, 0, err
	}
	n, err := Decode(kv)
	return n, kv.ModRevision, err
}

// List returns every node in name order.
func (r *Registry) List(ctx context.Context, opts ...store.ReadOption) ([]*apiv1.Node, error) {
	kvs, _, err := r.st.List(ctx, Prefix, opts...)
	if err != nil {
		return nil, err
	}
	out := make([]*apiv1.Node, 0, len(kvs))
	for _, kv := range kvs {
		n, err := Decode(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// Delete forgets a node. Its certificate no longer matches any record, so its sessions are
// refused and the name can be enrolled again.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	_, rev, err := r.Get(ctx, name)
	if err != nil {
		return err
	}
	_, err = r.st.Txn(ctx, store.Txn{If: []store.Compare{store.ModRevisionIs(Prefix+name, rev)}, Then: []store.Op{store.Delete(Prefix + name)}})
	return err
}

// Enroll records a new node with its certificate serial. A name that is already enrolled
// is refused, whatever machine asks: the machine ID is reported by the caller and proves
// nothing, so only an admin's deckctl node delete frees a name.
func (r *Registry) Enroll(ctx context.Context, name, machineID, serial string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return r.update(ctx, name, true, func(n *apiv1.Node, exists bool) (bool, error) {
		if exists {
			return false, fmt.Errorf("%w: %s is already enrolled; if that machine is gone or was reinstalled, run deckctl node delete %s first, or choose another --node-name", ErrNameTaken, name, name)
		}
		n.Name = name
		n.State = apiv1.NodeState_NODE_STATE_ENROLLED
		n.StateChanged = timestamppb.New(r.now())
		n.Facts = &agentv1.Facts{MachineId: machineID}
		n.Enrolled = timestamppb.New(r.now())
		n.CertificateSerial = serial
		return true, nil
	})
}

// CheckIdentity verifies that a node exists and that serial is its current certificate, or
// the one its last renewal replaced. The first use of a renewed certificate retires the
// previous one.
func (r *Registry) CheckIdentity(ctx context.Context, name, serial string) error {
	n, _, err := r.Get(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: node %s was deleted; enroll it again with a new token", ErrNotFound, name)
	}
	if err != nil {
		return err
	}
	switch {
	case !ValidSerial(n, serial):
		return fmt.Errorf("%w: the certificate of %s was replaced by a newer enrollment", ErrNameTaken, name)
	case n.GetPreviousCertificateSerial() != "" && serial == n.GetCertificateSerial():
		return r.update(ctx, name, false, func(n *apiv1.Node, _ bool) (bool, error) {
			if n.GetCertificateSerial() != serial {
				return false, nil
			}
			n.PreviousCertificateSerial = ""
			return true, nil
		})
	}
	return nil
}

// ValidSerial reports whether serial is a certificate node n accepts: its current one, or the
// one its last renewal replaced while the node has not used the new one yet.
func ValidSerial(n *apiv1.Node, serial string) bool {
	return serial != "" && (serial == n.GetCertificateSerial() || serial == n.GetPreviousCertificateSerial())
}

// ReplaceCertificate records a renewed certificate of a node, asked for with the certificate
// oldSerial: only while that one is valid (ValidSerial), so a deleted or re-enrolled node
// cannot renew its way back. The certificate it replaces stays valid until the new one is
// used; a renewal from the previous certificate (the answer to the last one was lost)
// replaces the unused one.
func (r *Registry) ReplaceCertificate(ctx context.Context, name, oldSerial, serial string) error {
	return r.update(ctx, name, false, func(n *apiv1.Node, _ bool) (bool, error) {
		if !ValidSerial(n, oldSerial) {
			return false, fmt.Errorf("%w: the certificate of %s was replaced by a newer enrollment", ErrNameTaken, name)
		}
		if oldSerial == n.GetCertificateSerial() {
			n.PreviousCertificateSerial = oldSerial
		}
		n.CertificateSerial = serial
		return true, nil
	})
}

// Agent is the build an agent's hello reported: its version and features.
type Agent struct {
	Version  string
	Features []string
}

// UpdateFacts stores the facts and the agent build an agent reported, when they changed.
func (r *Registry) UpdateFacts(ctx context.Context, name string, agent Agent, facts *agentv1.Facts) error {
	return r.update(ctx, name, false, func(n *apiv1.Node, _ bool) (bool, error) {
		if proto.Equal(n.GetFacts(), facts) && n.GetAgentVersion() == agent.Version && slices.Equal(n.GetAgentFeatures(), agent.Features) {
			return false, nil
		}
		n.Facts = facts
		n.AgentVersion = agent.Version
		n.AgentFeatures = slices.Clone(agent.Features)
		return true, nil
	})
}

// SetState records a liveness transition, fenced on the leadership that decided it.
func (r *Registry) SetState(ctx context.Context, name string, state apiv1.NodeState, fence store.Compare) (bool, error) {
	changed := false
	err := r.updateIf(ctx, name, false, []store.Compare{fence}, func(n *apiv1.Node, _ bool) (bool, error) {
		if n.GetState() == state {
			return false, nil
		}
		n.State = state
		n.StateChanged = timestamppb.New(r.now())
		changed = true
		return true, nil
	})
	return changed, err
}

func (r *Registry) update(ctx context.Context, name string, create bool, fn func(*apiv1.Node, bool) (bool, error)) error {
	return r.updateIf(ctx, name, create, nil, fn)
}

// updateIf is a read-modify-write with CAS, retried on conflict.
func (r *Registry) updateIf(ctx context.Context, name string, create bool, extra []store.Compare, fn func(*apiv1.Node, bool) (bool, error)) error {
	key := Prefix + name
	for {
		n := &apiv1.Node{}
		var rev int64
		kv, _, err := r.st.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if !create {
				return fmt.Errorf("%w: %s", ErrNotFound, name)
			}
		case err != nil:
			return err
		default:
			if n, err = Decode(kv); err != nil {
				return err
			}
			rev = kv.ModRevision
		}
		write, err := fn(n, rev != 0)
		if err != nil || !write {
			return err
		}
		b, err := proto.Marshal(n)
		if err != nil {
			return err
		}
		cmp := append([]store.Compare{store.ModRevisionIs(key, rev)}, extra...)
		_, err = r.st.Txn(ctx, store.Txn{If: cmp, Then: []store.Op{store.Put(key, b)}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}
