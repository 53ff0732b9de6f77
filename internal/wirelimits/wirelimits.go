package wirelimits

import (
	"fmt"

	"github.com/deckhandhq/deckhand/internal/bounded"
	taskv1 "github.com/deckhandhq/deckhand/proto/deckhand/task/v1"
)

const (
	// MaxMessageBytes is the largest gRPC message any caller may send a controller (the
	// server's receive limit, gRPC's default made explicit). A bigger message ends the call
	// or session with ResourceExhausted.
	MaxMessageBytes = 4 << 20
	// MaxOutputsBytes bounds a task's outputs (keys and values); a result with more fails
	// the task with OUTPUTS_TOO_LARGE, since later steps cannot trust partial outputs.
	MaxOutputsBytes = 64 << 10
	// MaxChangeField bounds a change's kind and target.
	MaxChangeField = 1 << 10
	// MaxChangeDetailBytes bounds the detail (a diff) of one change; longer details are cut.
	MaxChangeDetailBytes = 64 << 10
	// MaxChangesBytes bounds all of a result's changes; details past it are dropped.
	MaxChangesBytes = 1 << 20
	// MaxArtifactBytes bounds a task's artifact (a diagnostics bundle); a bigger one is
	// dropped.
	MaxArtifactBytes = 3 << 20
	// MaxErrorTextBytes bounds a task error's message and hint.
	MaxErrorTextBytes = 4 << 10
	// MaxReasonBytes bounds a task error's reason.
	MaxReasonBytes = 64
)

// Fit says what FitResult cut from a result.
type Fit struct {
	ArtifactBytes int  // the size of an artifact that was dropped, else 0
	OutputsBytes  int  // the size of outputs that were dropped (the task failed), else 0
	Changes       bool // change details were cut or dropped
	ErrorText     bool // the error's message, hint or reason was cut
}

// Cut reports whether anything was cut.
func (f Fit) Cut() bool { return f.ArtifactBytes > 0 || f.OutputsBytes > 0 || f.Changes || f.ErrorText }

// FitResult cuts res in place to the limits above and says what it cut: an artifact over
// MaxArtifactBytes is dropped; change details are cut to MaxChangeDetailBytes each and
// dropped past MaxChangesBytes in all; error texts are cut; outputs over MaxOutputsBytes are
// dropped and the task fails with OUTPUTS_TOO_LARGE. A result that fits is left as it is.
func FitResult(res *taskv1.TaskResult) Fit {
	var f Fit
	if n := len(res.GetArtifact()); n > MaxArtifactBytes {
		res.Artifact = nil
		f.ArtifactBytes = n
	}
	total := 0
	for _, c := range res.GetChanges() {
		if len(c.GetKind()) > MaxChangeField || len(c.GetTarget()) > MaxChangeField || len(c.GetDetail()) > MaxChangeDetailBytes {
			c.Kind, c.Target = bounded.String(c.GetKind(), MaxChangeField), bounded.String(c.GetTarget(), MaxChangeField)
			c.Detail = bounded.String(c.GetDetail(), MaxChangeDetailBytes)
			f.Changes = true
		}
		total += len(c.GetDetail()) + len(c.GetKind()) + len(c.GetTarget())
		if total > MaxChangesBytes {
			c.Detail = fmt.Sprintf("[detail dropped: the changes of a task take at most %d bytes]", MaxChangesBytes)
			f.Changes = true
		}
	}
	outputs := 0
	for k, v := range res.GetOutputs() {
		outputs += len(k) + len(v)
	}
	if outputs > MaxOutputsBytes {
		res.Outputs = nil
		res.State = taskv1.TaskState_TASK_STATE_FAILED
		res.Error = &taskv1.TaskError{Reason: "OUTPUTS_TOO_LARGE",
			Message: fmt.Sprintf("the task reported %d bytes of outputs; a result carries at most %d", outputs, MaxOutputsBytes),
			Hint:    "a task's outputs are short values (versions, a join command); report this with the agent log, and check the agent on this node"}
		f.OutputsBytes = outputs
	}
	if e := res.GetError(); e != nil && (len(e.GetMessage()) > MaxErrorTextBytes || len(e.GetHint()) > MaxErrorTextBytes || len(e.GetReason()) > MaxReasonBytes) {
		e.Message, e.Hint, e.Reason = bounded.String(e.GetMessage(), MaxErrorTextBytes), bounded.String(e.GetHint(), MaxErrorTextBytes), bounded.String(e.GetReason(), MaxReasonBytes)
		f.ErrorText = true
	}
	return f
}
