package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/deckhandhq/deckhand/controller/nodes"
	"github.com/deckhandhq/deckhand/controller/tasks"
	"github.com/deckhandhq/deckhand/controller/workflows"
	"github.com/deckhandhq/deckhand/internal/testkit/testcluster"
	agentv1 "github.com/deckhandhq/deckhand/proto/deckhand/agent/v1"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// structured runs deckctl with -o json and -o yaml: both succeed, the JSON is printed the
// way kubectl prints it (indented by four spaces, no other spacing: indenting it again
// changes nothing) and decodes into v; the YAML contains each of yamlWants.
func structured(t *testing.T, run func(args ...string) (string, error), v any, yamlWants []string, args ...string) string {
	t.Helper()
	js, err := run(append(args, "-o", "json")...)
	if err != nil {
		t.Fatalf("deckctl %s -o json: %v\n%s", strings.Join(args, " "), err, js)
	}
	var again bytes.Buffer
	if err := json.Indent(&again, []byte(strings.TrimSpace(js)), "", "    "); err != nil || again.String() != strings.TrimSpace(js) {
		t.Fatalf("deckctl %s -o json is not JSON as kubectl prints it (%v):\n%s", strings.Join(args, " "), err, js)
	}
	if err := json.Unmarshal([]byte(js), v); err != nil {
		t.Fatalf("deckctl %s -o json: %v\n%s", strings.Join(args, " "), err, js)
	}
	if yamlWants == nil {
		return js
	}
	y, err := run(append(args, "-o", "yaml")...)
	if err != nil {
		t.Fatalf("deckctl %s -o yaml: %v\n%s", strings.Join(args, " "), err, y)
	}
	for _, want := range yamlWants {
		if !strings.Contains(y, want) {
			t.Fatalf("deckctl %s -o yaml lacks %q:\n%s", strings.Join(args, " "), want, y)
		}
	}
	return js
}

// Commands that printed only a sentence print their result with -o json|yaml: an apply
// with nothing to do, workflow cancel, task cancel, node delete; plan shows the cluster
// document as text; task list puts the newest first.
func TestStructuredOutputOfEveryCommand(t *testing.T) {
	s := newListServer(t)
	now := time.Now()
	for _, name := range []string{"cp-1", "w-1"} {
		s.put(t, nodes.Prefix+name, &apiv1.Node{Name: name, State: apiv1.NodeState_NODE_STATE_READY, Enrolled: timestamppb.Now(),
			Facts: &agentv1.Facts{Hostname: name, OsId: "debian", OsVersion: "12", IpAddresses: []string{"10.250.0.10"}, RouteAddress: "10.250.0.10"}})
	}
	s.put(t, workflows.ClusterKey, &apiv1.Cluster{
		Spec:     &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13", PodSubnet: "10.244.0.0/16", NetworkProvider: "bridge"},
		Packages: &taskv1.PackagesSpec{Source: taskv1.PackageSource_PACKAGE_SOURCE_REPOSITORY},
		Runtime:  &taskv1.RuntimeSpec{Source: taskv1.RuntimeSource_RUNTIME_SOURCE_PACKAGE},
		Nodes:    []*apiv1.ClusterNode{{Name: "cp-1", Role: taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE, PodCidr: "10.244.0.0/24", Address: "10.250.0.10"}},
	})
	doc := "apiVersion: deckhand.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: t\nspec:\n  kubernetesVersion: v1.33.13\n  nodes:\n  - {name: cp-1, role: control-plane}\n"
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	// plan: the document as the user wrote it, not base64.
	var plan struct {
		Workflow struct {
			Spec struct {
				Apply struct {
					ClusterYaml string `json:"clusterYaml"`
				} `json:"apply"`
			} `json:"spec"`
		} `json:"workflow"`
	}
	structured(t, s.deckctl, &plan, []string{"clusterYaml: |", "  kubernetesVersion: v1.33.13"}, "plan", "-f", file)
	if plan.Workflow.Spec.Apply.ClusterYaml != doc {
		t.Fatalf("plan -o json shows the document as %q, want the text %q", plan.Workflow.Spec.Apply.ClusterYaml, doc)
	}

	// apply with nothing to do: the workflow, with its ID, and no steps.
	if out, err := s.deckctl("apply", "-f", file); err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("apply with nothing to do: %v\n%s", err, out)
	}
	var applied struct {
		ID    string `json:"id"`
		Steps []any  `json:"steps"`
	}
	structured(t, s.deckctl, &applied, []string{"id: "}, "apply", "-f", file)
	if applied.ID == "" || len(applied.Steps) != 0 {
		t.Fatalf("apply -o json with nothing to do = %+v, want a workflow ID and no steps", applied)
	}

	// workflow cancel (no engine runs here: the join waits until it is cancelled).
	var joined struct {
		ID string `json:"id"`
	}
	structured(t, s.deckctl, &joined, nil, "join", "w-1", "--detach")
	var cancelled struct {
		Workflow struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"workflow"`
	}
	structured(t, s.deckctl, &cancelled, nil, "workflow", "cancel", joined.ID)
	if cancelled.Workflow.ID != joined.ID || cancelled.Workflow.State != "WORKFLOW_STATE_CANCELLED" {
		t.Fatalf("workflow cancel -o json = %+v", cancelled)
	}

	// task cancel; task list, the newest first whatever the IDs' order.
	for i, id := range []string{"task-b", "task-c", "task-a"} {
		rec := bigTask(id, 0)
		rec.Created = timestamppb.New(now.Add(time.Duration(i) * time.Minute))
		s.put(t, tasks.Prefix+id, rec)
	}
	var taskCancel struct {
		Task struct {
			Task struct {
				ID string `json:"id"`
			} `json:"task"`
			State string `json:"state"`
		} `json:"task"`
	}
	structured(t, s.deckctl, &taskCancel, []string{"state: TASK_STATE_SUCCEEDED"}, "task", "cancel", "task-a")
	if taskCancel.Task.Task.ID != "task-a" {
		t.Fatalf("task cancel -o json = %+v", taskCancel)
	}
	table, err := s.deckctl("task", "list")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		order = append(order, strings.Fields(line)[0])
	}
	if strings.Join(order, " ") != "task-a task-c task-b" {
		t.Fatalf("task list order %v, want the newest first (task-a task-c task-b):\n%s", order, table)
	}
	var list struct {
		Tasks []struct {
			Task struct {
				ID string `json:"id"`
			} `json:"task"`
		} `json:"tasks"`
	}
	structured(t, s.deckctl, &list, nil, "task", "list")
	if len(list.Tasks) != 3 || list.Tasks[0].Task.ID != "task-a" || list.Tasks[2].Task.ID != "task-b" {
		t.Fatalf("task list -o json order: %+v", list.Tasks)
	}

	// node delete.
	var deleted struct{ Kind, Name, Action, Message string }
	structured(t, s.deckctl, &deleted, nil, "node", "delete", "w-1")
	if deleted.Kind != "node" || deleted.Name != "w-1" || deleted.Action != "deleted" || !strings.Contains(deleted.Message, "deckhand-agent --token-file") {
		t.Fatalf("node delete -o json = %+v", deleted)
	}
}

// token revoke prints what it revoked with -o json|yaml.
func TestTokenRevokeStructured(t *testing.T) {
	c := testcluster.New(t, 1)
	run := func(args ...string) (string, error) { return deckctlAs(c, c.AdminConfig(), args...) }
	var created struct {
		Token struct {
			ID string `json:"id"`
		} `json:"token"`
	}
	structured(t, run, &created, nil, "token", "create")
	var revoked struct{ Kind, Name, Action string }
	structured(t, run, &revoked, nil, "token", "revoke", created.Token.ID)
	if revoked.Kind != "token" || revoked.Name != created.Token.ID || revoked.Action != "revoked" {
		t.Fatalf("token revoke -o json = %+v", revoked)
	}
	structured(t, run, &created, nil, "token", "create")
	if out, err := run("token", "revoke", created.Token.ID, "-o", "yaml"); err != nil || !strings.Contains(out, "action: revoked") {
		t.Fatalf("token revoke -o yaml: %v\n%s", err, out)
	}
}
