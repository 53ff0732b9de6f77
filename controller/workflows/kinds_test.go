package workflows

import (
	"slices"
	"testing"

	"github.com/deckhandhq/deckhand/internal/taskkinds"
	apiv1 "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

// Every task kind a plan can wrap gets its declared step timeout (internal/taskkinds holds
// the table and its exhaustiveness test).
func TestEveryTaskKindHasAStepTimeout(t *testing.T) {
	kinds := (&taskv1.TaskSpec{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	for i := range kinds.Len() {
		fd := kinds.Get(i)
		kind := (&taskv1.TaskSpec{}).ProtoReflect().NewField(fd).Message().Interface()
		p := &plan{}
		s := p.add("n1", "x", "x", nil, spec(kind))
		if KindOf(s.GetTask()) != string(fd.Name()) || s.GetTimeout().AsDuration() <= 0 || s.GetTimeout().AsDuration() != StepTimeout(string(fd.Name())) {
			t.Errorf("a %s step: kind %q, timeout %v", fd.Name(), KindOf(s.GetTask()), s.GetTimeout().AsDuration())
		}
	}
}

// Every input a plan feeds a step from another step's output names an output the producing
// kind declares: a typo would fail the step at run time with "produced no ...".
func TestPlanInputsNameDeclaredOutputs(t *testing.T) {
	cl := testCluster("cp-1", "cp-2", "w-1")
	cl.Spec.ControlPlaneEndpoint = "10.0.0.1:6443"
	cl.Nodes[1].Role = taskv1.NodeRole_NODE_ROLE_CONTROL_PLANE
	enrolled := enrolledSet("cp-1", "cp-2", "w-1", "w-2", "cp-3")
	specs := map[string]*apiv1.WorkflowSpec{
		"init":     {Kind: &apiv1.WorkflowSpec_Init{Init: &apiv1.InitWorkflow{Node: "cp-1", Cluster: &taskv1.ClusterSpec{KubernetesVersion: "v1.33.13"}}}},
		"join":     {Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "w-2"}}},
		"join-cp":  {Kind: &apiv1.WorkflowSpec_Join{Join: &apiv1.JoinWorkflow{Node: "cp-3", ControlPlane: true}}},
		"reset-cp": {Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "cp-2"}}},
		"reset":    {Kind: &apiv1.WorkflowSpec_Reset_{Reset_: &apiv1.ResetWorkflow{Node: "w-1"}}},
		"apply":    {Kind: &apiv1.WorkflowSpec_Apply{Apply: &apiv1.ApplyWorkflow{ClusterYaml: applyDoc([]string{"cp-1"}, "w-1", "w-2")}}},
	}
	inputs := 0
	for name, ws := range specs {
		var current *apiv1.Cluster
		if name != "init" && name != "apply" {
			current = cl
		}
		p, err := build(ws, current, enrolled)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, s := range p.steps {
			for _, in := range s.GetInputs() {
				if in.GetStep() == "" {
					continue // filled from the cluster record when the step starts
				}
				inputs++
				from := p.step(in.GetStep())
				if from == nil {
					t.Errorf("%s: %s takes %s from a step %s the plan does not have", name, s.GetName(), in.GetField(), in.GetStep())
					continue
				}
				k, _ := taskkinds.Get(KindOf(from.GetTask()))
				if !slices.Contains(k.Outputs, in.GetOutput()) {
					t.Errorf("%s: %s takes output %q of %s, a %s step, which declares %v", name, s.GetName(), in.GetOutput(), from.GetName(), k.Name, k.Outputs)
				}
			}
		}
	}
	if inputs < 10 {
		t.Fatalf("checked %d inputs: the plans feed steps from outputs, this test saw too few", inputs)
	}
}
