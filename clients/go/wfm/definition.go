package wfm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
)

// Definition is a declarative workflow: a graph of steps that call tools or run
// other registered workflows (the proto's WorkflowDefinition; see examples/ in
// the repository). Register it with RegisterOptions.Definition.
//
// Its JSON form is the one of `wfm register -f` files: snake_case names and
// durations written as strings such as "5s" or "200ms". json.Unmarshal reads
// it (refusing unknown fields inside steps), and ParseDefinitionFile reads a
// whole file with its name, description and labels.
type Definition struct {
	// Steps: at least one. Each runs as soon as the steps it depends on are
	// done; independent steps run in parallel.
	Steps []Step `json:"steps"`
	// InputSchema is a JSON Schema every execution's input must satisfy (nil: any object).
	InputSchema map[string]any `json:"input_schema,omitempty"`
	// Output is the template of the output over input and steps, any JSON value
	// (nil: unset, an object of the outputs of the steps nothing depends on, by step id;
	// Null: the JSON null, which is another definition).
	Output any `json:"output,omitempty"`
}

// Null is an explicit JSON null for Definition.Output, where nil means unset. The two
// are different definitions, so Get gives back Null for a workflow registered with
// `output: null`, and registering what Get returned is the same version again.
var Null = jsonNull{}

type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// UnmarshalJSON reads a definition, keeping `"output": null` (Null) apart from no output (nil).
func (d *Definition) UnmarshalJSON(data []byte) error {
	type plain Definition
	var aux struct {
		plain
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*d = Definition(aux.plain)
	return d.setOutput(aux.Output)
}

// setOutput sets Output from its JSON text: nil when absent, Null for null.
func (d *Definition) setOutput(raw json.RawMessage) error {
	d.Output = nil
	switch {
	case raw == nil:
		return nil
	case string(bytes.TrimSpace(raw)) == "null":
		d.Output = Null
		return nil
	default:
		return json.Unmarshal(raw, &d.Output)
	}
}

// Step is one step of a Definition. Set exactly one of Tool and Workflow.
// String values of arguments and inputs may be templates (`{{ input.x }}`).
type Step struct {
	// ID is unique in the definition: letters, digits and '_'.
	ID string `json:"id"`
	// DependsOn lists the steps that must be done first.
	DependsOn []string        `json:"depends_on,omitempty"`
	Tool      *ToolAction     `json:"tool,omitempty"`
	Workflow  *WorkflowAction `json:"workflow,omitempty"`
	// When is a condition; false skips the step.
	When string `json:"when,omitempty"`
	// ForEach is an expression giving a list: the action runs once per item
	// (`item`, `index`) and the output is the list of results.
	ForEach string `json:"for_each,omitempty"`
	// MaxParallel is the number of ForEach items running at once; 0: the default (8).
	MaxParallel int `json:"max_parallel,omitempty"`
	// Retry retries a failed attempt; nil: one attempt.
	Retry *RetryPolicy `json:"retry,omitempty"`
	// Timeout is the longest one attempt may take; 0: no limit.
	Timeout time.Duration `json:"timeout,omitempty"`
	// ContinueOnError keeps the run going when this step fails.
	ContinueOnError bool `json:"continue_on_error,omitempty"`
}

// ToolAction calls a tool (see ListTools).
type ToolAction struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments,omitempty"`
}

// WorkflowAction runs a registered workflow as a child execution.
type WorkflowAction struct {
	Name    string         `json:"name"`
	Version int            `json:"version,omitempty"` // 0: the latest when the step runs
	Input   map[string]any `json:"input,omitempty"`
}

// RetryPolicy says how a failed step is retried (Temporal's fields).
type RetryPolicy struct {
	InitialInterval        time.Duration `json:"initial_interval,omitempty"`    // 0: 1s
	BackoffCoefficient     float64       `json:"backoff_coefficient,omitempty"` // 0: 2
	MaximumInterval        time.Duration `json:"maximum_interval,omitempty"`    // 0: 100 × InitialInterval
	MaximumAttempts        int           `json:"maximum_attempts,omitempty"`    // the first included; 0: 3
	NonRetryableErrorTypes []string      `json:"non_retryable_error_types,omitempty"`
}

// ParseDefinitionFile reads the JSON form of a `wfm register -f` file (the
// YAML files of examples/): name, description, labels and max_concurrency
// next to steps, input_schema and output. Unknown fields are refused. For a
// map (from a YAML library, say), json.Marshal it first.
func ParseDefinitionFile(data []byte) (RegisterOptions, error) {
	// Definition's own fields, not the embedded Definition: its UnmarshalJSON would be
	// promoted and read the whole file, leaving name and the others out.
	var f struct {
		Name           string            `json:"name"`
		Description    string            `json:"description"`
		Labels         map[string]string `json:"labels"`
		MaxConcurrency int               `json:"max_concurrency"`
		Steps          []Step            `json:"steps"`
		InputSchema    map[string]any    `json:"input_schema"`
		Output         json.RawMessage   `json:"output"`
	}
	if err := decodeStrict(data, &f); err != nil {
		return RegisterOptions{}, fmt.Errorf("wfm: not a workflow definition file: %w", err)
	}
	def := Definition{Steps: f.Steps, InputSchema: f.InputSchema}
	if err := def.setOutput(f.Output); err != nil {
		return RegisterOptions{}, fmt.Errorf("wfm: not a workflow definition file: output: %w", err)
	}
	return RegisterOptions{
		Name:           f.Name,
		Description:    f.Description,
		Labels:         f.Labels,
		MaxConcurrency: f.MaxConcurrency,
		Definition:     &def,
	}, nil
}

// MarshalJSON writes the step with its timeout as a string ("5s").
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step
	return json.Marshal(struct {
		plain
		Timeout jsonDuration `json:"timeout,omitempty"`
	}{plain(s), jsonDuration(s.Timeout)})
}

// UnmarshalJSON reads a step with its timeout as a string ("5s"); unknown fields are refused.
func (s *Step) UnmarshalJSON(data []byte) error {
	type plain Step
	var aux struct {
		plain
		Timeout jsonDuration `json:"timeout"`
	}
	if err := decodeStrict(data, &aux); err != nil {
		return err
	}
	*s = Step(aux.plain)
	s.Timeout = time.Duration(aux.Timeout)
	return nil
}

// MarshalJSON writes the policy with its intervals as strings ("200ms").
func (r RetryPolicy) MarshalJSON() ([]byte, error) {
	type plain RetryPolicy
	return json.Marshal(struct {
		plain
		InitialInterval jsonDuration `json:"initial_interval,omitempty"`
		MaximumInterval jsonDuration `json:"maximum_interval,omitempty"`
	}{plain(r), jsonDuration(r.InitialInterval), jsonDuration(r.MaximumInterval)})
}

// UnmarshalJSON reads a policy with its intervals as strings ("200ms"); unknown fields are refused.
func (r *RetryPolicy) UnmarshalJSON(data []byte) error {
	type plain RetryPolicy
	var aux struct {
		plain
		InitialInterval jsonDuration `json:"initial_interval"`
		MaximumInterval jsonDuration `json:"maximum_interval"`
	}
	if err := decodeStrict(data, &aux); err != nil {
		return err
	}
	*r = RetryPolicy(aux.plain)
	r.InitialInterval = time.Duration(aux.InitialInterval)
	r.MaximumInterval = time.Duration(aux.MaximumInterval)
	return nil
}

// jsonDuration is a time.Duration written in JSON as a string ("1m30s", "200ms").
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5s\" or \"200ms\", not %s", data)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a string such as \"5s\" or \"200ms\"", s)
	}
	*d = jsonDuration(v)
	return nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// toProto converts the definition; a value that cannot be sent as JSON is
// refused with InvalidArgument, naming the field.
func (d *Definition) toProto() (*workflowv1.WorkflowDefinition, error) {
	schema, err := toStruct("definition.input_schema", d.InputSchema)
	if err != nil {
		return nil, err
	}
	output, err := toValue("definition.output", d.Output)
	if err != nil {
		return nil, err
	}
	out := &workflowv1.WorkflowDefinition{InputSchema: schema, Output: output}
	for i, s := range d.Steps {
		field := fmt.Sprintf("definition.steps[%d] (step %q)", i, s.ID)
		ps := &workflowv1.Step{
			Id:              s.ID,
			DependsOn:       s.DependsOn,
			When:            s.When,
			ForEach:         s.ForEach,
			MaxParallel:     int32(s.MaxParallel),
			Timeout:         toDuration(s.Timeout),
			ContinueOnError: s.ContinueOnError,
		}
		switch {
		case s.Tool != nil && s.Workflow != nil:
			return nil, invalidArgument("%s: set Tool or Workflow, not both", field)
		case s.Tool != nil:
			args, err := toStruct(field+".tool.arguments", s.Tool.Arguments)
			if err != nil {
				return nil, err
			}
			ps.Action = &workflowv1.Step_Tool{Tool: &workflowv1.ToolAction{Name: s.Tool.Name, Arguments: args}}
		case s.Workflow != nil:
			input, err := toStruct(field+".workflow.input", s.Workflow.Input)
			if err != nil {
				return nil, err
			}
			ps.Action = &workflowv1.Step_Workflow{Workflow: &workflowv1.WorkflowAction{
				Name: s.Workflow.Name, Version: int32(s.Workflow.Version), Input: input,
			}}
		}
		if r := s.Retry; r != nil {
			ps.Retry = &workflowv1.RetryPolicy{
				InitialInterval:        toDuration(r.InitialInterval),
				BackoffCoefficient:     r.BackoffCoefficient,
				MaximumInterval:        toDuration(r.MaximumInterval),
				MaximumAttempts:        int32(r.MaximumAttempts),
				NonRetryableErrorTypes: r.NonRetryableErrorTypes,
			}
		}
		out.Steps = append(out.Steps, ps)
	}
	return out, nil
}

func fromDefinition(d *workflowv1.WorkflowDefinition) *Definition {
	if d == nil {
		return nil
	}
	out := &Definition{InputSchema: fromStruct(d.GetInputSchema()), Output: fromValue(d.GetOutput())}
	if _, isNull := d.GetOutput().GetKind().(*structpb.Value_NullValue); isNull {
		out.Output = Null // set, to null: not the same definition as no output
	}
	for _, s := range d.GetSteps() {
		step := Step{
			ID:              s.GetId(),
			DependsOn:       s.GetDependsOn(),
			When:            s.GetWhen(),
			ForEach:         s.GetForEach(),
			MaxParallel:     int(s.GetMaxParallel()),
			Timeout:         fromDuration(s.GetTimeout()),
			ContinueOnError: s.GetContinueOnError(),
		}
		if t := s.GetTool(); t != nil {
			step.Tool = &ToolAction{Name: t.GetName(), Arguments: fromStruct(t.GetArguments())}
		}
		if w := s.GetWorkflow(); w != nil {
			step.Workflow = &WorkflowAction{Name: w.GetName(), Version: int(w.GetVersion()), Input: fromStruct(w.GetInput())}
		}
		if r := s.GetRetry(); r != nil {
			step.Retry = &RetryPolicy{
				InitialInterval:        fromDuration(r.GetInitialInterval()),
				BackoffCoefficient:     r.GetBackoffCoefficient(),
				MaximumInterval:        fromDuration(r.GetMaximumInterval()),
				MaximumAttempts:        int(r.GetMaximumAttempts()),
				NonRetryableErrorTypes: r.GetNonRetryableErrorTypes(),
			}
		}
		out.Steps = append(out.Steps, step)
	}
	return out
}

// toDuration is d as a proto Duration; 0 leaves the field unset.
func toDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}
