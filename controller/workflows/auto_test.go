package workflows

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	storagev1 "github.com/deckhandhq/deckhand/proto/deckhand/storage/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

func TestDecideRenewal(t *testing.T) {
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	year := 365 * day
	cert := func(node, name string, left time.Duration) nodeCert {
		return nodeCert{node: node, name: name, notBefore: now.Add(left - year), notAfter: now.Add(left)}
	}
	cps := []string{"cp-1", "cp-2", "cp-3"}
	within := func(d time.Duration) *taskv1.CertificateSettings {
		return &taskv1.CertificateSettings{RenewBefore: durationpb.New(d)}
	}
	last := func(c nodeCert, ago time.Duration) *storagev1.AutoRenewalRecord {
		return &storagev1.AutoRenewalRecord{Started: timestamppb.New(now.Add(-ago)), WorkflowId: "wf-x", Node: c.node, Cert: c.name, NotAfter: timestamppb.New(c.notAfter)}
	}
	old := cert("cp-2", "apiserver", 10*day)
	for _, c := range []struct {
		name   string
		in     renewalInput
		start  bool
		nodes  []string
		reason string
	}{
		{name: "nothing within the default 30 days", in: renewalInput{certs: []nodeCert{cert("cp-1", "apiserver", 31*day)}}, reason: "no certificate expires within 720h"},
		{name: "one within 30 days: its control plane", in: renewalInput{certs: []nodeCert{cert("cp-1", "apiserver", 31*day), old}},
			start: true, nodes: []string{"cp-2"}, reason: "apiserver on cp-2 expires 2027-06-11T12:00:00Z, within renewBefore 720h"},
		{name: "several control planes, in the cluster's order; the earliest is the trigger",
			in:    renewalInput{certs: []nodeCert{cert("cp-3", "admin.conf", 20*day), old, cert("cp-1", "etcd-server", 29*day)}},
			start: true, nodes: []string{"cp-1", "cp-2", "cp-3"}, reason: "apiserver on cp-2"},
		{name: "a longer renewBefore", in: renewalInput{settings: within(60 * day), certs: []nodeCert{cert("cp-1", "apiserver", 59*day)}}, start: true, nodes: []string{"cp-1"}},
		{name: "a shorter renewBefore", in: renewalInput{settings: within(7 * day), certs: []nodeCert{old}}, reason: "no certificate expires within 168h"},
		{name: "manual: never", in: renewalInput{settings: &taskv1.CertificateSettings{Manual: true}, certs: []nodeCert{old}}, reason: "manual"},
		{name: "a node that is no control plane (left the cluster) is not renewed", in: renewalInput{certs: []nodeCert{cert("gone", "apiserver", day)}}, reason: "no certificate expires"},
		{name: "already expired: renewed", in: renewalInput{certs: []nodeCert{cert("cp-1", "apiserver", -day)}}, start: true, nodes: []string{"cp-1"}},
		{name: "while a renewal runs: not", in: renewalInput{certs: []nodeCert{old}, running: true}, reason: "a certificate renewal is running"},
		{name: "the same crossing again (the renewal failed): not",
			in: renewalInput{certs: []nodeCert{old}, last: last(old, 5*day)}, reason: "workflow wf-x was started for apiserver on cp-2 already"},
		{name: "a new crossing after the gap: yes",
			in: renewalInput{certs: []nodeCert{old}, last: last(cert("cp-2", "apiserver", 10*day-year), 2*time.Hour)}, start: true, nodes: []string{"cp-2"}},
		{name: "a new crossing within the gap: not yet",
			in: renewalInput{certs: []nodeCert{old}, last: last(cert("cp-1", "apiserver", 20*day), 30*time.Minute)}, reason: "the last automatic renewal started 30m0s ago"},
		{name: "renewBefore not shorter than the certificate's life: refused, no loop",
			in: renewalInput{settings: within(year), certs: []nodeCert{cert("cp-1", "apiserver", year-time.Minute)}}, reason: "leaves less than a tenth of it"},
		{name: "renewBefore just under the life: refused (each renewal would be due a minute later)",
			in: renewalInput{settings: within(year - time.Minute), certs: []nodeCert{cert("cp-1", "apiserver", year-2*time.Minute)}}, reason: "leaves less than a tenth"},
		{name: "renewBefore at nine tenths of the life: renewed",
			in: renewalInput{settings: within(year - year/10), certs: []nodeCert{cert("cp-1", "apiserver", year-year/10-time.Hour)}}, start: true, nodes: []string{"cp-1"}},
		{name: "a short-lived certificate and a fitting renewBefore: renewed; the renewed one (a year) is not due",
			in: renewalInput{settings: within(150 * time.Minute), certs: []nodeCert{{node: "cp-2", name: "apiserver", notBefore: now.Add(-time.Hour), notAfter: now.Add(2 * time.Hour)},
				cert("cp-1", "apiserver", year)}}, start: true, nodes: []string{"cp-2"}},
		{name: "after that renewal: nothing due",
			in: renewalInput{settings: within(150 * time.Minute), certs: []nodeCert{cert("cp-2", "apiserver", year)}}, reason: "no certificate expires within 2h30m0s"},
		{name: "any due certificate too short-lived for renewBefore blocks it (named)",
			in: renewalInput{settings: within(20 * day), certs: []nodeCert{old, {node: "cp-3", name: "odd", notBefore: now.Add(-day), notAfter: now.Add(day)}}}, reason: "odd on cp-3 lives 48h0m0s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.now, in.cps = now, cps
			d := decideRenewal(in)
			if d.start != c.start || strings.Join(d.nodes, ",") != strings.Join(c.nodes, ",") || !strings.Contains(d.reason, c.reason) {
				t.Fatalf("start %v nodes %v reason %q; want %v %v %q", d.start, d.nodes, d.reason, c.start, c.nodes, c.reason)
			}
		})
	}
}

// The same crossing gets the same workflow ID (a second leader finds the first one's);
// another certificate or expiry gets another.
func TestAutoRenewalIDIsTheCrossings(t *testing.T) {
	at := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	a := autoRenewalID(nodeCert{node: "cp-1", name: "apiserver", notAfter: at})
	if err := ValidateID(a); err != nil {
		t.Fatal(err)
	}
	if a != autoRenewalID(nodeCert{node: "cp-1", name: "apiserver", notAfter: at}) {
		t.Error("not stable")
	}
	for _, o := range []nodeCert{{node: "cp-2", name: "apiserver", notAfter: at}, {node: "cp-1", name: "admin.conf", notAfter: at}, {node: "cp-1", name: "apiserver", notAfter: at.Add(time.Second)}} {
		if autoRenewalID(o) == a {
			t.Errorf("%v: same ID", o)
		}
	}
}
