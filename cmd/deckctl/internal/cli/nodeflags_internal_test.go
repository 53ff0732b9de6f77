package cli

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// --label, --taint, --no-taints and --kubelet-arg become the workflow's node options; a
// malformed one is refused naming the flag.
func TestNodeFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		f    nodeFlags
		want *apiv1.NodeOptions
		err  string
	}{
		{name: "none", f: nodeFlags{}, want: nil},
		{name: "everything", f: nodeFlags{labels: []string{"example.com/rack=r1", "tier="}, taints: []string{"example.com/dedicated=infra:NoSchedule", "gpu:PreferNoSchedule", "a=b=c:NoExecute"},
			kubeletArgs: []string{"max-pods=60", "eviction-hard=memory.available<100Mi"}},
			want: &apiv1.NodeOptions{Labels: map[string]string{"example.com/rack": "r1", "tier": ""},
				Taints:           []*taskv1.Taint{{Key: "example.com/dedicated", Value: "infra", Effect: "NoSchedule"}, {Key: "gpu", Effect: "PreferNoSchedule"}, {Key: "a", Value: "b=c", Effect: "NoExecute"}},
				KubeletExtraArgs: map[string]string{"max-pods": "60", "eviction-hard": "memory.available<100Mi"}}},
		{name: "no taints", f: nodeFlags{noTaints: true}, want: &apiv1.NodeOptions{NoTaints: true}},
		{name: "no taints and a taint", f: nodeFlags{noTaints: true, taints: []string{"a:NoSchedule"}}, err: "--no-taints and --taint"},
		{name: "taint without effect", f: nodeFlags{taints: []string{"a=b"}}, err: `--taint "a=b": write KEY[=VALUE]:EFFECT`},
		{name: "taint with empty effect", f: nodeFlags{taints: []string{"a:"}}, err: "--taint"},
		{name: "taint without key", f: nodeFlags{taints: []string{"=b:NoSchedule"}}, err: "the key is empty"},
		{name: "label without =", f: nodeFlags{labels: []string{"rack"}}, err: `--label "rack": write KEY=VALUE`},
		{name: "label twice", f: nodeFlags{labels: []string{"a=1", "a=2"}}, err: "a is given twice"},
		{name: "kubelet arg without =", f: nodeFlags{kubeletArgs: []string{"--max-pods"}}, err: "--kubelet-arg"},
	} {
		got, err := c.f.options()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !proto.Equal(got, c.want) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
}
