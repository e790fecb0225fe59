package wfm

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
)

// Workflow is a registered workflow version.
type Workflow struct {
	Name           string
	Version        int
	Description    string
	Labels         map[string]string
	MaxConcurrency int // 0: only the global limit applies
	CreateTime     time.Time
	// Source tells what the workflow runs: SourceNative (Type and Arguments are
	// set) or SourceDefinition (Definition is set).
	Source SourceKind
	// Type and Arguments of the native source (a type compiled into the server).
	Type      string
	Arguments map[string]any
	// Definition of a declarative workflow.
	Definition *Definition
	// Versions lists every registered version of this name, ascending. Set by Get only.
	Versions []int
}

// SourceKind tells what a workflow runs.
type SourceKind string

// Sources of a workflow.
const (
	SourceNative     SourceKind = "native"     // a type compiled into the server
	SourceDefinition SourceKind = "definition" // a declarative Definition
)

// WorkflowType is a workflow type compiled into the server, usable as RegisterOptions.Type.
type WorkflowType struct {
	Name            string
	Description     string
	ArgumentsSchema map[string]any // JSON Schema of the arguments
}

// Tool is a tool workflows can call.
type Tool struct {
	Name        string // "server.tool" for MCP tools
	Description string
	InputSchema map[string]any // JSON Schema of the arguments
	Server      string         // "builtin" or the MCP server's name
}

// Stats is GetStats' answer: per-workflow numbers counted since the server
// started (Since), kept in the server's memory only.
type Stats struct {
	Since     time.Time
	Workflows []WorkflowStats
}

// WorkflowStats are one workflow's execution counts and the p50/p99 durations
// (acceptance to end) of its last WindowSize executions that ended (0 when none has).
type WorkflowStats struct {
	Name                                  string
	Started, Succeeded, Failed, Cancelled int64
	Running                               int64 // accepted and not ended: running or queued
	P50, P99                              time.Duration
	WindowSize                            int
}

// ExecutionStatus is the status of an execution.
type ExecutionStatus = workflowv1.ExecutionStatus

// Execution statuses.
const (
	StatusUnspecified = workflowv1.ExecutionStatus_EXECUTION_STATUS_UNSPECIFIED
	StatusQueued      = workflowv1.ExecutionStatus_EXECUTION_STATUS_QUEUED
	StatusRunning     = workflowv1.ExecutionStatus_EXECUTION_STATUS_RUNNING
	StatusCompleted   = workflowv1.ExecutionStatus_EXECUTION_STATUS_COMPLETED
	StatusFailed      = workflowv1.ExecutionStatus_EXECUTION_STATUS_FAILED
	StatusCancelled   = workflowv1.ExecutionStatus_EXECUTION_STATUS_CANCELLED
)

// StepStatus is the status of one step.
type StepStatus = workflowv1.StepStatus

// Execution is one run of a workflow.
type Execution struct {
	ID                string
	WorkflowName      string
	WorkflowVersion   int
	Status            ExecutionStatus
	Input             map[string]any
	Metadata          map[string]any
	CreateTime        time.Time
	StartTime         time.Time // zero until started
	EndTime           time.Time // zero until terminal
	Result            *Result   // nil until started; final once terminal
	ParentExecutionID string
	RequestID         string
	LastSequence      int64
}

// Terminal tells whether the execution has finished (completed, failed or cancelled).
func (e *Execution) Terminal() bool {
	return e.Status == StatusCompleted || e.Status == StatusFailed || e.Status == StatusCancelled
}

// Result is the summary of an execution.
type Result struct {
	Success        bool
	ExecutionTime  time.Duration
	StepsCompleted int
	StepsFailed    int
	StepsSkipped   int
	Steps          []StepResult
	Output         any // a JSON value: map[string]any, []any, string, float64, bool or nil
	Error          string
}

// StepResult is the outcome of one step.
type StepResult struct {
	StepID   string
	Status   StepStatus
	Output   any
	Error    string
	Duration time.Duration
	Attempts int
}

// EventKind names the kind of an ExecutionEvent, as in the proto's oneof.
type EventKind string

// Event kinds.
const (
	EventAccepted      EventKind = "accepted"
	EventQueued        EventKind = "queued"
	EventStarted       EventKind = "started"
	EventStepStarted   EventKind = "step_started"
	EventStepProgress  EventKind = "step_progress"
	EventStepCompleted EventKind = "step_completed"
	EventStepFailed    EventKind = "step_failed"
	EventStepSkipped   EventKind = "step_skipped"
	// EventStepCancelled: the step was cut short by a cancel, a shutdown or a step beside
	// it failing; it did not fail. (Servers before this event sent step_failed instead,
	// with an error starting "Cancelled:", and histories recorded then keep it.)
	EventStepCancelled EventKind = "step_cancelled"
	EventCompleted     EventKind = "completed"
	EventFailed        EventKind = "failed"
	EventCancelled     EventKind = "cancelled"
	EventUnknown       EventKind = "unknown" // a kind newer than this client
)

// Event is a status event of an execution. Only the fields of its Kind are set.
type Event struct {
	ExecutionID string
	Sequence    int64 // from 1, without gaps
	Time        time.Time
	Kind        EventKind

	WorkflowName    string        // accepted
	WorkflowVersion int           // accepted
	Reason          string        // queued, step_skipped, step_cancelled, cancelled
	Attempt         int           // started, step_started, step_failed, step_cancelled
	StepID          string        // step_*
	Message         string        // step_progress
	Fraction        *float64      // step_progress, when known
	Output          any           // step_completed
	Duration        time.Duration // step_completed
	Error           string        // step_failed, failed
	WillRetry       bool          // step_failed
	Result          *Result       // completed, failed, cancelled

	// Proto is the event as received.
	Proto *workflowv1.ExecutionEvent
}

// Terminal tells whether this is the last event of its execution.
func (e *Event) Terminal() bool {
	return e.Kind == EventCompleted || e.Kind == EventFailed || e.Kind == EventCancelled
}

// Status is the execution status a terminal event stands for (StatusUnspecified otherwise).
func (e *Event) Status() ExecutionStatus {
	switch e.Kind {
	case EventCompleted:
		return StatusCompleted
	case EventFailed:
		return StatusFailed
	case EventCancelled:
		return StatusCancelled
	}
	return StatusUnspecified
}

func (e *Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s", e.Sequence, e.Kind)
	if e.StepID != "" {
		fmt.Fprintf(&b, " %s", e.StepID)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if e.Error != "" {
		fmt.Fprintf(&b, ": %s", e.Error)
	}
	return b.String()
}

// ExecutionError is returned by Run and EventStream.Wait when an execution
// ends failed or cancelled. Result holds what the server reported.
type ExecutionError struct {
	ExecutionID string
	Status      ExecutionStatus // StatusFailed or StatusCancelled
	Message     string
	Result      *Result
}

func (e *ExecutionError) Error() string {
	s := "failed"
	if e.Status == StatusCancelled {
		s = "cancelled"
	}
	if e.Message == "" {
		return fmt.Sprintf("wfm: execution %s %s", e.ExecutionID, s)
	}
	return fmt.Sprintf("wfm: execution %s %s: %s", e.ExecutionID, s, e.Message)
}

// ---- conversions ----

// toStruct converts m through encoding/json, so that any value json.Marshal
// takes works ([]int, map[string]string, structs with json tags, ...). A value
// it refuses is an InvalidArgument error naming field.
func toStruct(field string, m map[string]any) (*structpb.Struct, error) {
	if m == nil {
		return nil, nil
	}
	s := &structpb.Struct{}
	if err := viaJSON(field, m, s); err != nil {
		return nil, err
	}
	return s, nil
}

// toValue is toStruct for any JSON value; nil leaves the field unset.
func toValue(field string, v any) (*structpb.Value, error) {
	if v == nil {
		return nil, nil
	}
	pv := &structpb.Value{}
	if err := viaJSON(field, v, pv); err != nil {
		return nil, err
	}
	return pv, nil
}

func viaJSON(field string, v any, m proto.Message) error {
	b, err := json.Marshal(v)
	if err != nil {
		return invalidArgument("%s: cannot be sent as JSON: %v", field, err)
	}
	if err := checkExactNumbers(field, v); err != nil {
		return err
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		return invalidArgument("%s: cannot be sent as JSON: %v", field, err)
	}
	return nil
}

func fromStruct(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

func fromValue(v *structpb.Value) any {
	if v == nil {
		return nil
	}
	return v.AsInterface()
}

func fromTime(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func fromDuration(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func fromWorkflow(w *workflowv1.Workflow) *Workflow {
	if w == nil {
		return nil
	}
	out := &Workflow{
		Name:           w.GetName(),
		Version:        int(w.GetVersion()),
		Description:    w.GetDescription(),
		Labels:         w.GetLabels(),
		MaxConcurrency: int(w.GetMaxConcurrency()),
		CreateTime:     fromTime(w.GetCreateTime()),
	}
	switch src := w.GetSource().(type) {
	case *workflowv1.Workflow_Native:
		out.Source = SourceNative
		out.Type = src.Native.GetType()
		out.Arguments = fromStruct(src.Native.GetArguments())
	case *workflowv1.Workflow_Definition:
		out.Source = SourceDefinition
		out.Definition = fromDefinition(src.Definition)
	}
	return out
}

func fromResult(r *workflowv1.ExecutionResult) *Result {
	if r == nil {
		return nil
	}
	out := &Result{
		Success:        r.GetSuccess(),
		ExecutionTime:  fromDuration(r.GetExecutionTime()),
		StepsCompleted: int(r.GetStepsCompleted()),
		StepsFailed:    int(r.GetStepsFailed()),
		StepsSkipped:   int(r.GetStepsSkipped()),
		Output:         fromValue(r.GetOutput()),
		Error:          r.GetError(),
	}
	for _, s := range r.GetSteps() {
		out.Steps = append(out.Steps, StepResult{
			StepID:   s.GetStepId(),
			Status:   s.GetStatus(),
			Output:   fromValue(s.GetOutput()),
			Error:    s.GetError(),
			Duration: fromDuration(s.GetDuration()),
			Attempts: int(s.GetAttempts()),
		})
	}
	return out
}

func fromExecution(e *workflowv1.Execution) *Execution {
	if e == nil {
		return nil
	}
	return &Execution{
		ID:                e.GetId(),
		WorkflowName:      e.GetWorkflowName(),
		WorkflowVersion:   int(e.GetWorkflowVersion()),
		Status:            e.GetStatus(),
		Input:             fromStruct(e.GetInput()),
		Metadata:          fromStruct(e.GetMetadata()),
		CreateTime:        fromTime(e.GetCreateTime()),
		StartTime:         fromTime(e.GetStartTime()),
		EndTime:           fromTime(e.GetEndTime()),
		Result:            fromResult(e.GetResult()),
		ParentExecutionID: e.GetParentExecutionId(),
		RequestID:         e.GetRequestId(),
		LastSequence:      e.GetLastSequence(),
	}
}

func fromEvent(e *workflowv1.ExecutionEvent) *Event {
	out := &Event{
		ExecutionID: e.GetExecutionId(),
		Sequence:    e.GetSequence(),
		Time:        fromTime(e.GetTime()),
		Kind:        EventUnknown,
		Proto:       e,
	}
	switch k := e.GetKind().(type) {
	case *workflowv1.ExecutionEvent_Accepted_:
		out.Kind = EventAccepted
		out.WorkflowName = k.Accepted.GetWorkflowName()
		out.WorkflowVersion = int(k.Accepted.GetWorkflowVersion())
	case *workflowv1.ExecutionEvent_Queued_:
		out.Kind = EventQueued
		out.Reason = k.Queued.GetReason()
	case *workflowv1.ExecutionEvent_Started_:
		out.Kind = EventStarted
		out.Attempt = int(k.Started.GetAttempt())
	case *workflowv1.ExecutionEvent_StepStarted_:
		out.Kind = EventStepStarted
		out.StepID = k.StepStarted.GetStepId()
		out.Attempt = int(k.StepStarted.GetAttempt())
	case *workflowv1.ExecutionEvent_StepProgress_:
		out.Kind = EventStepProgress
		out.StepID = k.StepProgress.GetStepId()
		out.Message = k.StepProgress.GetMessage()
		if k.StepProgress.Fraction != nil {
			f := k.StepProgress.GetFraction()
			out.Fraction = &f
		}
	case *workflowv1.ExecutionEvent_StepCompleted_:
		out.Kind = EventStepCompleted
		out.StepID = k.StepCompleted.GetStepId()
		out.Output = fromValue(k.StepCompleted.GetOutput())
		out.Duration = fromDuration(k.StepCompleted.GetDuration())
	case *workflowv1.ExecutionEvent_StepFailed_:
		out.Kind = EventStepFailed
		out.StepID = k.StepFailed.GetStepId()
		out.Error = k.StepFailed.GetError()
		out.Attempt = int(k.StepFailed.GetAttempt())
		out.WillRetry = k.StepFailed.GetWillRetry()
	case *workflowv1.ExecutionEvent_StepSkipped_:
		out.Kind = EventStepSkipped
		out.StepID = k.StepSkipped.GetStepId()
		out.Reason = k.StepSkipped.GetReason()
	case *workflowv1.ExecutionEvent_StepCancelled_:
		out.Kind = EventStepCancelled
		out.StepID = k.StepCancelled.GetStepId()
		out.Reason = k.StepCancelled.GetReason()
		out.Attempt = int(k.StepCancelled.GetAttempt())
	case *workflowv1.ExecutionEvent_Completed_:
		out.Kind = EventCompleted
		out.Result = fromResult(k.Completed.GetResult())
	case *workflowv1.ExecutionEvent_Failed_:
		out.Kind = EventFailed
		out.Error = k.Failed.GetError()
		out.Result = fromResult(k.Failed.GetResult())
	case *workflowv1.ExecutionEvent_Cancelled_:
		out.Kind = EventCancelled
		out.Reason = k.Cancelled.GetReason()
		out.Result = fromResult(k.Cancelled.GetResult())
	}
	return out
}
