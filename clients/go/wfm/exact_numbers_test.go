package wfm_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

// Integers beyond ±2^53 travel as doubles and would arrive changed: they are refused
// before sending, naming where they are, as the wfm CLI and the TypeScript client do.
func TestIntegersBeyondDoublesAreRefused(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-exact")
	registerEcho(t, name)

	for _, tc := range []struct {
		opts       wfm.ExecuteOptions
		path, what string
	}{
		{wfm.ExecuteOptions{Input: map[string]any{"user": map[string]any{"n": int64(9007199254740993)}}}, "input.user.n", "9007199254740993"},
		{wfm.ExecuteOptions{Input: map[string]any{"n": -int64(1<<53) - 1}}, "input.n", "-9007199254740993"},
		{wfm.ExecuteOptions{Input: map[string]any{"ok": 1}, Metadata: map[string]any{"ids": []uint64{1, 1 << 60}}}, "metadata.ids[1]", "1152921504606846976"},
		{wfm.ExecuteOptions{Input: map[string]any{"n": json.Number("18446744073709551616")}}, "input.n", "18446744073709551616"},
		{wfm.ExecuteOptions{Input: map[string]any{"p": struct {
			ID int64 `json:"id"`
		}{9007199254740995}}}, "input.p.id", "9007199254740995"},
	} {
		_, err := sharedClient.Execute(ctx, name, tc.opts)
		if !wfm.IsInvalidArgument(err) || !strings.HasPrefix(wfm.Message(err), "wfm: "+tc.path+": "+tc.what+" is beyond ±2^53") {
			t.Errorf("%s: want InvalidArgument naming %s and %s, got %v (code %s)", tc.path, tc.path, tc.what, err, wfm.Code(err))
		}
		if _, err := sharedClient.StartExecution(ctx, name, tc.opts); !wfm.IsInvalidArgument(err) {
			t.Errorf("StartExecution with %s: %v", tc.path, err)
		}
	}
	_, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "echo", Arguments: map[string]any{"big": uint64(1) << 63}})
	if !wfm.IsInvalidArgument(err) || !strings.Contains(err.Error(), "arguments.big: 9223372036854775808 is beyond ±2^53") {
		t.Errorf("arguments: %v", err)
	}
	_, _, err = sharedClient.Register(ctx, wfm.RegisterOptions{Name: uniqueName(t, "go-exact-def"), Definition: &wfm.Definition{
		Steps: []wfm.Step{{ID: "a", Tool: &wfm.ToolAction{Name: "sleep", Arguments: map[string]any{"duration_ms": int64(1) << 62}}}},
	}})
	if !wfm.IsInvalidArgument(err) || !strings.Contains(err.Error(), `definition.steps[0] (step "a").tool.arguments.duration_ms: 4611686018427387904 is beyond`) {
		t.Errorf("definition: %v", err)
	}

	// 2^53 itself, and floats of any size (a float64 is a double already), arrive as they are.
	input := map[string]any{"max": int64(1 << 53), "min": -int64(1 << 53), "f": 1e300, "g": float64(1 << 60), "u": uint64(42)}
	res, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{Input: input})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"max": 9007199254740992.0, "min": -9007199254740992.0, "f": 1e300, "g": float64(1 << 60), "u": 42.0}
	if !reflect.DeepEqual(res.Output, want) {
		t.Fatalf("output %#v, want %#v", res.Output, want)
	}
}
