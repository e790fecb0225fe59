package wfm_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

// examples/fan-out.yaml as JSON (the Go module has no YAML parser), name left out.
const fanOutJSON = `{
  "description": "Squares numbers in parallel, sums them, and reports when the sum is large.",
  "labels": {"example": "true"},
  "input_schema": {
    "type": "object",
    "required": ["numbers"],
    "properties": {
      "numbers": {"type": "array", "items": {"type": "number"}, "maxItems": 100},
      "threshold": {"type": "number", "default": 10}
    }
  },
  "steps": [
    {"id": "square", "for_each": "{{ input.numbers }}", "max_parallel": 3,
     "tool": {"name": "json_transform", "arguments": {"data": "{{ item }}", "expression": "data * data"}},
     "retry": {"maximum_attempts": 3, "initial_interval": "200ms"},
     "timeout": "5s"},
    {"id": "total", "depends_on": ["square"],
     "tool": {"name": "json_transform", "arguments": {"data": "{{ steps.square.output }}", "expression": "data | sum"}}},
    {"id": "celebrate", "depends_on": ["total"],
     "when": "steps.total.output > (input.threshold | default(10))",
     "tool": {"name": "sleep", "arguments": {"duration_ms": 100}}}
  ],
  "output": {
    "squares": "{{ steps.square.output }}",
    "total": "{{ steps.total.output }}",
    "message": "sum of squares is {{ steps.total.output }}",
    "celebrated": "{{ steps.celebrate.status == 'completed' }}"
  }
}`

// The fan-out example, read with ParseDefinitionFile: registered, run with an
// input of ordinary Go values, read back unchanged.
func TestRegisterDefinitionFile(t *testing.T) {
	ctx := ctxT(t)
	opts, err := wfm.ParseDefinitionFile([]byte(fanOutJSON))
	if err != nil {
		t.Fatal(err)
	}
	def := opts.Definition
	if def == nil || len(def.Steps) != 3 || def.Steps[0].Timeout != 5*time.Second ||
		def.Steps[0].Retry.InitialInterval != 200*time.Millisecond || opts.Labels["example"] != "true" {
		t.Fatalf("parsed %+v", opts)
	}
	opts.Name = uniqueName(t, "go-fan-out")
	wf, created, err := sharedClient.Register(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !created || wf.Version != 1 || wf.Source != wfm.SourceDefinition || wf.Type != "" || wf.Definition == nil {
		t.Fatalf("register: created=%v %+v", created, wf)
	}

	res, err := sharedClient.Run(ctx, opts.Name, wfm.ExecuteOptions{Input: map[string]any{"numbers": []int{3, 1, 4, 1, 5}, "threshold": 10}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"squares": []any{9.0, 1.0, 16.0, 1.0, 25.0}, "total": 52.0,
		"message": "sum of squares is 52", "celebrated": true,
	}
	if !res.Success || res.StepsCompleted != 3 || !reflect.DeepEqual(res.Output, want) {
		t.Fatalf("result %+v, output %#v, want %#v", res, res.Output, want)
	}
	// Below the threshold, celebrate is skipped (not failed).
	res, err = sharedClient.Run(ctx, opts.Name, wfm.ExecuteOptions{Input: map[string]any{"numbers": []float64{1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if out := res.Output.(map[string]any); out["total"] != 5.0 || out["celebrated"] != false || res.StepsSkipped != 1 {
		t.Fatalf("small sum: %+v %#v", res, res.Output)
	}
	// The input_schema is enforced before anything runs.
	_, err = sharedClient.Run(ctx, opts.Name, wfm.ExecuteOptions{Input: map[string]any{"numbers": []string{"x"}}})
	if !wfm.IsInvalidArgument(err) || !strings.Contains(wfm.Message(err), "/numbers/0") {
		t.Fatalf("input against the schema: %v", err)
	}

	got, err := sharedClient.Get(ctx, opts.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != wfm.SourceDefinition || got.Type != "" || got.Arguments != nil || got.Description != opts.Description {
		t.Fatalf("get: %+v", got)
	}
	if !reflect.DeepEqual(got.Definition, def) {
		a, _ := json.Marshal(got.Definition)
		b, _ := json.Marshal(def)
		t.Fatalf("definition read back:\n%s\nwant\n%s", a, b)
	}
	// Identical content registered again: the same version.
	if again, created, err := sharedClient.Register(ctx, opts); err != nil || created || again.Version != 1 {
		t.Fatalf("re-register: %+v %v %v", again, created, err)
	}
}

// A Definition built in Go: a tool step, then a child workflow fed by it.
func TestRegisterDefinition(t *testing.T) {
	ctx := ctxT(t)
	child := uniqueName(t, "go-def-child")
	registerEcho(t, child)
	name := uniqueName(t, "go-def")
	def := &wfm.Definition{
		InputSchema: map[string]any{"type": "object", "required": []string{"rows"}},
		Steps: []wfm.Step{
			{
				ID:      "count",
				Tool:    &wfm.ToolAction{Name: "json_transform", Arguments: map[string]any{"data": "{{ input.rows }}", "expression": "data | length"}},
				Timeout: 2 * time.Second,
				Retry:   &wfm.RetryPolicy{MaximumAttempts: 2, InitialInterval: 10 * time.Millisecond, NonRetryableErrorTypes: []string{"InvalidArguments"}},
			},
			{
				ID:        "child",
				DependsOn: []string{"count"},
				Workflow:  &wfm.WorkflowAction{Name: child, Input: map[string]any{"n": "{{ steps.count.output }}", "who": "{{ input.who }}"}},
			},
		},
		Output: map[string]any{"count": "{{ steps.count.output }}", "echoed": "{{ steps.child.output }}"},
	}
	wf, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Definition: def, Labels: map[string]string{"kind": "declarative"}})
	if err != nil {
		t.Fatal(err)
	}
	if wf.Source != wfm.SourceDefinition || wf.Labels["kind"] != "declarative" {
		t.Fatalf("register: %+v", wf)
	}
	type row struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	res, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"rows": []row{{1, "a"}, {2, "b"}, {3, "c"}}, "who": "go"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"count": 3.0, "echoed": map[string]any{"n": 3.0, "who": "go"}}
	if !reflect.DeepEqual(res.Output, want) {
		t.Fatalf("output %#v, want %#v", res.Output, want)
	}

	got, err := sharedClient.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	d := got.Definition
	if got.Source != wfm.SourceDefinition || d == nil || len(d.Steps) != 2 {
		t.Fatalf("get: %+v", got)
	}
	s0, s1 := d.Steps[0], d.Steps[1]
	if s0.ID != "count" || s0.Tool == nil || s0.Tool.Name != "json_transform" || s0.Tool.Arguments["expression"] != "data | length" ||
		s0.Timeout != 2*time.Second || !reflect.DeepEqual(s0.Retry, def.Steps[0].Retry) || s0.Workflow != nil {
		t.Errorf("step count read back: %+v (retry %+v)", s0, s0.Retry)
	}
	if s1.ID != "child" || s1.Workflow == nil || s1.Workflow.Name != child || s1.Tool != nil || !reflect.DeepEqual(s1.DependsOn, []string{"count"}) {
		t.Errorf("step child read back: %+v", s1)
	}
	if !reflect.DeepEqual(d.InputSchema, map[string]any{"type": "object", "required": []any{"rows"}}) || !reflect.DeepEqual(d.Output, def.Output) {
		t.Errorf("schema %#v, output %#v", d.InputSchema, d.Output)
	}

	// A native workflow reads back as such.
	native, err := sharedClient.Get(ctx, child)
	if err != nil || native.Source != wfm.SourceNative || native.Type != "echo" || native.Definition != nil {
		t.Fatalf("native: %+v %v", native, err)
	}
}

// The server's own checks of a definition come back as its status errors.
func TestRegisterDefinitionRefusedByServer(t *testing.T) {
	ctx := ctxT(t)
	cycle := &wfm.Definition{Steps: []wfm.Step{
		{ID: "a", DependsOn: []string{"b"}, Tool: &wfm.ToolAction{Name: "sleep"}},
		{ID: "b", DependsOn: []string{"a"}, Tool: &wfm.ToolAction{Name: "sleep"}},
	}}
	_, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: uniqueName(t, "go-def-cycle"), Definition: cycle})
	if !wfm.IsInvalidArgument(err) {
		t.Fatalf("cycle: want InvalidArgument, got %v", err)
	}
	unknown := &wfm.Definition{Steps: []wfm.Step{{ID: "a", Tool: &wfm.ToolAction{Name: "no_such_tool"}}}}
	_, _, err = sharedClient.Register(ctx, wfm.RegisterOptions{Name: uniqueName(t, "go-def-tool"), Definition: unknown})
	if !wfm.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "no_such_tool") {
		t.Fatalf("unknown tool: want FailedPrecondition naming it, got %v", err)
	}
}

// Exactly one of Type and Definition, checked before anything is sent.
func TestRegisterNeedsTypeOrDefinition(t *testing.T) {
	ctx := ctxT(t)
	def := &wfm.Definition{Steps: []wfm.Step{{ID: "a", Tool: &wfm.ToolAction{Name: "sleep"}}}}
	for _, tc := range []struct {
		name string
		opts wfm.RegisterOptions
		want string
	}{
		{"both", wfm.RegisterOptions{Name: "go-both", Type: "echo", Definition: def}, "not both"},
		{"neither", wfm.RegisterOptions{Name: "go-neither"}, "set Type"},
		{"arguments with a definition", wfm.RegisterOptions{Name: "go-args", Definition: def, Arguments: map[string]any{}}, "Arguments go with Type"},
		{"tool and workflow in one step", wfm.RegisterOptions{Name: "go-two-actions", Definition: &wfm.Definition{Steps: []wfm.Step{
			{ID: "x", Tool: &wfm.ToolAction{Name: "sleep"}, Workflow: &wfm.WorkflowAction{Name: "other"}},
		}}}, `steps[0] (step "x"): set Tool or Workflow, not both`},
	} {
		_, _, err := sharedClient.Register(ctx, tc.opts)
		if !wfm.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want InvalidArgument containing %q, got %v", tc.name, tc.want, err)
		}
		if _, err := sharedClient.Get(ctx, tc.opts.Name); !wfm.IsNotFound(err) {
			t.Errorf("%s: registered anyway (%v)", tc.name, err)
		}
	}
}

// Inputs, metadata and arguments take ordinary Go values, through encoding/json.
func TestGoValuesAsInput(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-values")
	registerEcho(t, name)
	type point struct {
		X     int     `json:"x"`
		Y     float32 `json:"y"`
		Label string  `json:"label,omitempty"`
	}
	input := map[string]any{
		"numbers": []int{1, 2},
		"tags":    []string{"a", "b"},
		"labels":  map[string]string{"k": "v"},
		"point":   point{X: 3, Y: 0.5},
		"ptr":     &point{X: 1, Label: "p"},
		"count":   uint8(7),
		"none":    nil,
	}
	res, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{Input: input, Metadata: map[string]any{"caller": point{X: 9}}})
	if err != nil {
		t.Fatalf("run: %v (code %s)", err, wfm.Code(err))
	}
	want := map[string]any{
		"numbers": []any{1.0, 2.0},
		"tags":    []any{"a", "b"},
		"labels":  map[string]any{"k": "v"},
		"point":   map[string]any{"x": 3.0, "y": 0.5},
		"ptr":     map[string]any{"x": 1.0, "y": 0.0, "label": "p"},
		"count":   7.0,
		"none":    nil,
	}
	if !reflect.DeepEqual(res.Output, want) {
		t.Fatalf("output %#v, want %#v", res.Output, want)
	}

	// What encoding/json refuses is an InvalidArgument naming the field, sent nowhere.
	for field, opts := range map[string]wfm.ExecuteOptions{
		"input":    {Input: map[string]any{"ch": make(chan int)}},
		"metadata": {Metadata: map[string]any{"nan": math.NaN()}},
	} {
		_, err := sharedClient.Execute(ctx, name, opts)
		if !wfm.IsInvalidArgument(err) || !strings.HasPrefix(wfm.Message(err), "wfm: "+field+": ") {
			t.Errorf("%s: want InvalidArgument about %s, got %v (code %s)", field, field, err, wfm.Code(err))
		}
		if _, err := sharedClient.StartExecution(ctx, name, opts); !wfm.IsInvalidArgument(err) {
			t.Errorf("StartExecution with a bad %s: %v", field, err)
		}
	}
	_, _, err = sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "echo", Arguments: map[string]any{"f": func() {}}})
	if !wfm.IsInvalidArgument(err) || !strings.Contains(err.Error(), "arguments") {
		t.Errorf("bad arguments: %v", err)
	}
}

// An explicit `output: null` is content of its own, unlike an unset output: what Get
// returns registers again as the same version.
func TestDefinitionOutputNullRoundTrips(t *testing.T) {
	ctx := ctxT(t)
	opts, err := wfm.ParseDefinitionFile([]byte(`{"steps": [{"id": "a", "tool": {"name": "sleep", "arguments": {"duration_ms": 1}}}], "output": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Definition.Output != wfm.Null {
		t.Fatalf("parsed output %#v, want wfm.Null", opts.Definition.Output)
	}
	if b, err := json.Marshal(opts.Definition); err != nil || !strings.Contains(string(b), `"output":null`) {
		t.Fatalf("marshalled %s %v", b, err)
	}
	var back wfm.Definition
	if err := json.Unmarshal([]byte(`{"steps": [], "output": null}`), &back); err != nil || back.Output != wfm.Null {
		t.Fatalf("json.Unmarshal: output %#v %v", back.Output, err)
	}
	opts.Name = uniqueName(t, "go-null-output")
	first, created, err := sharedClient.Register(ctx, opts)
	if err != nil || !created {
		t.Fatalf("register: %v (created %v)", err, created)
	}
	got, err := sharedClient.Get(ctx, opts.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Definition.Output != wfm.Null {
		t.Fatalf("read back output %#v, want wfm.Null", got.Definition.Output)
	}
	again, created, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: opts.Name, Definition: got.Definition})
	if err != nil || created || again.Version != first.Version {
		t.Fatalf("re-registering what Get returned: version %d (first %d), created %v, %v", again.Version, first.Version, created, err)
	}
	// Unset is another content: a new version.
	unset, created, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: opts.Name, Definition: &wfm.Definition{Steps: got.Definition.Steps}})
	if err != nil || !created || unset.Version == first.Version {
		t.Fatalf("registering without output: version %d, created %v, %v", unset.Version, created, err)
	}
}

// The JSON form of a Definition is the one of `wfm register -f`, both ways.
func TestDefinitionJSON(t *testing.T) {
	opts, err := wfm.ParseDefinitionFile([]byte(`{"name": "j", "max_concurrency": 2, "steps": [
		{"id": "a", "tool": {"name": "sleep"}, "timeout": "1m30s",
		 "retry": {"initial_interval": "0.25s", "maximum_interval": "2s", "backoff_coefficient": 1.5}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := opts.Definition.Steps[0]
	if opts.Name != "j" || opts.MaxConcurrency != 2 || s.Timeout != 90*time.Second ||
		s.Retry.InitialInterval != 250*time.Millisecond || s.Retry.MaximumInterval != 2*time.Second || s.Retry.BackoffCoefficient != 1.5 {
		t.Fatalf("parsed %+v, step %+v", opts, s)
	}
	b, err := json.Marshal(opts.Definition)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"steps":[{"id":"a","tool":{"name":"sleep"},"retry":{"backoff_coefficient":1.5,"initial_interval":"250ms","maximum_interval":"2s"},"timeout":"1m30s"}]}`
	if string(b) != want {
		t.Fatalf("marshalled\n%s\nwant\n%s", b, want)
	}
	var back wfm.Definition
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, opts.Definition) {
		t.Fatalf("round trip: %+v %v", back, err)
	}

	for _, bad := range []struct{ json, want string }{
		{`{"steps": [{"id": "a", "dependson": ["b"]}]}`, `unknown field "dependson"`},
		{`{"steps": [{"id": "a", "timeout": 5}]}`, `a duration is a string`},
		{`{"steps": [{"id": "a", "timeout": "soon"}]}`, `invalid duration "soon"`},
		{`{"steps": [], "nmae": "x"}`, `unknown field "nmae"`},
		{`{"steps": []} {}`, `after the JSON value`},
	} {
		_, err := wfm.ParseDefinitionFile([]byte(bad.json))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: want an error containing %q, got %v", bad.json, bad.want, err)
		}
	}
}

// Wait follows an execution started earlier to its end, from any state.
func TestWait(t *testing.T) {
	ctx := ctxT(t)
	echo := uniqueName(t, "go-wait")
	registerEcho(t, echo)
	done, err := sharedClient.StartExecution(ctx, echo, wfm.ExecuteOptions{Input: map[string]any{"w": []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sharedClient.Wait(ctx, done.ExecutionID)
	if err != nil || !res.Success || !reflect.DeepEqual(res.Output, map[string]any{"w": []any{1.0}}) {
		t.Fatalf("wait: %+v %v", res, err)
	}
	// Already ended: the same result again.
	if again, err := sharedClient.Wait(ctx, done.ExecutionID); err != nil || !reflect.DeepEqual(again.Output, res.Output) {
		t.Fatalf("wait again: %+v %v", again, err)
	}

	sleep := uniqueName(t, "go-wait-sleep")
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: sleep, Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	running, err := sharedClient.StartExecution(ctx, sleep, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 300}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := sharedClient.Wait(ctx, running.ExecutionID); err != nil || !res.Success {
		t.Fatalf("wait for a running execution: %+v %v", res, err)
	}

	long, err := sharedClient.StartExecution(ctx, sleep, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 60000}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_, _ = sharedClient.CancelExecution(ctx, long.ExecutionID, "stop waiting")
	}()
	_, err = sharedClient.Wait(ctx, long.ExecutionID)
	var ee *wfm.ExecutionError
	if !wfm.IsExecutionCancelled(err) || !errors.As(err, &ee) || ee.ExecutionID != long.ExecutionID || ee.Message != "stop waiting" {
		t.Fatalf("wait for a cancelled execution: %v", err)
	}

	if _, err := sharedClient.Wait(ctx, "00000000-0000-0000-0000-000000000000"); !wfm.IsNotFound(err) {
		t.Fatalf("wait for an unknown execution: %v", err)
	}
}
