package wfm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/types/known/structpb"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
	"github.com/wfm-dev/wfm/clients/go/wfm"
)

func registerEcho(t *testing.T, name string) *wfm.Workflow {
	t.Helper()
	wf, _, err := sharedClient.Register(ctxT(t), wfm.RegisterOptions{Name: name, Type: "echo"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return wf
}

func TestRegisterAndGet(t *testing.T) {
	ctx := ctxT(t)
	c := sharedClient
	name := uniqueName(t, "go-register")

	wf, created, err := c.Register(ctx, wfm.RegisterOptions{
		Name:        name,
		Type:        "echo",
		Description: "first",
		Labels:      map[string]string{"team": "go"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !created || wf.Name != name || wf.Version != 1 || wf.Type != "echo" || wf.Description != "first" ||
		wf.Labels["team"] != "go" || wf.CreateTime.IsZero() {
		t.Fatalf("register: created=%v %+v", created, wf)
	}

	// Identical content: the existing version, not created.
	again, created, err := c.Register(ctx, wfm.RegisterOptions{
		Name: name, Type: "echo", Description: "first", Labels: map[string]string{"team": "go"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if created || again.Version != 1 {
		t.Fatalf("identical re-register: created=%v version=%d, want false 1", created, again.Version)
	}

	// Different content: a new version.
	v2, created, err := c.Register(ctx, wfm.RegisterOptions{Name: name, Type: "echo", Description: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if !created || v2.Version != 2 {
		t.Fatalf("changed re-register: created=%v version=%d, want true 2", created, v2.Version)
	}

	got, err := c.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != name || got.Version != 2 || got.Description != "second" || !slices.Equal(got.Versions, []int{1, 2}) {
		t.Fatalf("get latest: %+v", got)
	}
	first, err := c.GetVersion(ctx, name, 1)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != 1 || first.Description != "first" {
		t.Fatalf("get version 1: %+v", first)
	}
	if _, err := c.GetVersion(ctx, name, 99); !wfm.IsNotFound(err) {
		t.Fatalf("get version 99: want NotFound, got %v", err)
	}
	if _, err := c.Get(ctx, "no-such-workflow"); !wfm.IsNotFound(err) {
		t.Fatalf("get unknown: want NotFound, got %v (code %s)", err, wfm.Code(err))
	}
}

func TestRegisterWithArguments(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-sleep-args")
	wf, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{
		Name: name, Type: "sleep", Arguments: map[string]any{"default_duration_ms": 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	if wf.Type != "sleep" || wf.Arguments["default_duration_ms"] != float64(5) {
		t.Fatalf("arguments not kept: %+v", wf)
	}
	res, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success {
		t.Fatalf("sleep with default duration: %+v", res)
	}
}

func TestRegisterInvalidName(t *testing.T) {
	_, _, err := sharedClient.Register(ctxT(t), wfm.RegisterOptions{Name: "bad name!", Type: "echo"})
	if !wfm.IsInvalidArgument(err) {
		t.Fatalf("want InvalidArgument, got %v (code %s)", err, wfm.Code(err))
	}
	if wfm.Message(err) == "" {
		t.Fatal("InvalidArgument without a message")
	}
}

func TestRegisterUnknownType(t *testing.T) {
	_, _, err := sharedClient.Register(ctxT(t), wfm.RegisterOptions{Name: uniqueName(t, "go-unknown-type"), Type: "no_such_type"})
	if err == nil {
		t.Fatal("registering an unknown type succeeded")
	}
	t.Logf("unknown type: %s %s", wfm.Code(err), wfm.Message(err))
}

func TestListPagination(t *testing.T) {
	ctx := ctxT(t)
	c := sharedClient
	suite := fmt.Sprint(time.Now().UnixNano())
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("go-page-%s-%d", suite, i)
		names = append(names, name)
		if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: name, Type: "noop", Labels: map[string]string{"suite": suite}}); err != nil {
			t.Fatal(err)
		}
	}
	filter := map[string]string{"suite": suite}

	// Page by page: 2, 2, 1, with a token on every page but the last.
	var sizes []int
	var paged []string
	opts := wfm.ListOptions{PageSize: 2, LabelFilter: filter}
	for range 10 {
		page, err := c.ListPage(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Workflows))
		for _, w := range page.Workflows {
			paged = append(paged, w.Name)
		}
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	if !slices.Equal(sizes, []int{2, 2, 1}) {
		t.Errorf("page sizes %v, want [2 2 1]", sizes)
	}
	if got := slices.Sorted(slices.Values(paged)); !slices.Equal(got, names) {
		t.Errorf("paged names %v, want %v", got, names)
	}

	// The iterator fetches every page.
	var iterated []string
	for wf, err := range c.List(ctx, wfm.ListOptions{PageSize: 2, LabelFilter: filter}) {
		if err != nil {
			t.Fatal(err)
		}
		iterated = append(iterated, wf.Name)
	}
	if got := slices.Sorted(slices.Values(iterated)); !slices.Equal(got, names) {
		t.Errorf("iterated names %v, want %v", got, names)
	}

	// Without a filter, page size 2 over every workflow of the server: no duplicates, ours all there.
	all, err := c.ListAll(ctx, wfm.ListOptions{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, w := range all {
		if seen[w.Name] {
			t.Errorf("workflow %s listed twice", w.Name)
		}
		seen[w.Name] = true
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("workflow %s missing from the unfiltered list", n)
		}
	}

	// Stopping the iteration early stops fetching.
	count := 0
	for _, err := range c.List(ctx, wfm.ListOptions{PageSize: 2, LabelFilter: filter}) {
		if err != nil {
			t.Fatal(err)
		}
		count++
		if count == 3 {
			break
		}
	}
	if count != 3 {
		t.Errorf("early break: %d", count)
	}
}

func TestListLatestVersionOnly(t *testing.T) {
	ctx := ctxT(t)
	suite := fmt.Sprint(time.Now().UnixNano())
	name := "go-latest-" + suite
	labels := map[string]string{"suite": suite}
	for _, d := range []string{"v1", "v2"} {
		if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "echo", Description: d, Labels: labels}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := sharedClient.ListAll(ctx, wfm.ListOptions{LabelFilter: labels})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Version != 2 || all[0].Description != "v2" {
		t.Fatalf("list: want only version 2, got %d entries: %+v", len(all), all)
	}
}

func TestUnregister(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-unregister")
	registerEcho(t, name)
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "echo", Description: "v2"}); err != nil {
		t.Fatal(err)
	}
	n, err := sharedClient.Unregister(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("versions removed %d, want 2", n)
	}
	if _, err := sharedClient.Get(ctx, name); !wfm.IsNotFound(err) {
		t.Fatalf("get after unregister: want NotFound, got %v", err)
	}
	if _, err := sharedClient.Unregister(ctx, name); !wfm.IsNotFound(err) {
		t.Errorf("unregister twice: want NotFound, got %v", err)
	}
}

var echoKinds = []wfm.EventKind{
	wfm.EventAccepted, wfm.EventStarted, wfm.EventStepStarted, wfm.EventStepCompleted, wfm.EventCompleted,
}

func kindsAndSeqs(events []*wfm.Event) ([]wfm.EventKind, []int64) {
	var kinds []wfm.EventKind
	var seqs []int64
	for _, e := range events {
		kinds = append(kinds, e.Kind)
		seqs = append(seqs, e.Sequence)
	}
	return kinds, seqs
}

func TestExecuteStreamsEventsInOrder(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-exec")
	wf := registerEcho(t, name)
	input := map[string]any{"greeting": "hi", "n": 3.0, "nested": map[string]any{"list": []any{true, nil, "x"}}}

	stream, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: input, Metadata: map[string]any{"caller": "go-test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if stream.ExecutionID() == "" {
		t.Fatal("no execution id after Execute")
	}
	var events []*wfm.Event
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	kinds, seqs := kindsAndSeqs(events)
	if !slices.Equal(kinds, echoKinds) {
		t.Fatalf("kinds %v, want %v", kinds, echoKinds)
	}
	if !slices.Equal(seqs, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("sequences %v, want [1 2 3 4 5]", seqs)
	}
	for _, e := range events {
		if e.ExecutionID != stream.ExecutionID() {
			t.Errorf("event %s of execution %q, want %q", e, e.ExecutionID, stream.ExecutionID())
		}
		if e.Time.IsZero() {
			t.Errorf("event %s without time", e)
		}
	}
	if a := events[0]; a.WorkflowName != name || a.WorkflowVersion != wf.Version {
		t.Errorf("accepted: %+v", a)
	}
	if s := events[1]; s.Attempt != 1 {
		t.Errorf("started attempt %d, want 1", s.Attempt)
	}
	if s := events[2]; s.StepID != "echo" {
		t.Errorf("step_started step %q, want echo", s.StepID)
	}
	if s := events[3]; s.StepID != "echo" || !reflect.DeepEqual(s.Output, input) {
		t.Errorf("step_completed: step %q output %#v", s.StepID, s.Output)
	}
	done := events[4]
	if !done.Terminal() || done.Status() != wfm.StatusCompleted || done.Result == nil {
		t.Fatalf("terminal event: %+v", done)
	}
	r := done.Result
	if !r.Success || r.StepsCompleted != 1 || r.StepsFailed != 0 || !reflect.DeepEqual(r.Output, input) {
		t.Errorf("result: %+v", r)
	}
	if len(r.Steps) != 1 || r.Steps[0].StepID != "echo" || r.Steps[0].Status != workflowv1.StepStatus_STEP_STATUS_COMPLETED {
		t.Errorf("result steps: %+v", r.Steps)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("Recv after the end: %v, want io.EOF", err)
	}

	// The execution record agrees.
	ex, err := sharedClient.GetExecution(ctx, stream.ExecutionID())
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != wfm.StatusCompleted || !ex.Terminal() || ex.LastSequence != 5 || ex.WorkflowName != name ||
		!reflect.DeepEqual(ex.Input, input) || ex.Metadata["caller"] != "go-test" ||
		ex.Result == nil || !reflect.DeepEqual(ex.Result.Output, input) ||
		ex.CreateTime.IsZero() || ex.StartTime.IsZero() || ex.EndTime.IsZero() {
		t.Errorf("execution: %+v", ex)
	}
}

func TestExecuteIterator(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-iter")
	registerEcho(t, name)
	stream, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	var events []*wfm.Event
	for ev, err := range stream.All() {
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	kinds, seqs := kindsAndSeqs(events)
	if !slices.Equal(kinds, echoKinds) || !slices.Equal(seqs, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("kinds %v seqs %v", kinds, seqs)
	}
	// Wait after the terminal event still returns the result.
	res, err := stream.Wait()
	if err != nil || res == nil || res.Output.(map[string]any)["k"] != "v" {
		t.Fatalf("wait: %+v %v", res, err)
	}
}

// The server itself must end the stream after the terminal event (the client
// does not rely on it, so check with the raw stub).
func TestExecuteServerEndsStreamAfterTerminal(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-raw")
	registerEcho(t, name)
	in, _ := structpb.NewStruct(map[string]any{"a": 1})
	st, err := sharedClient.Stub().Execute(ctx, &workflowv1.ExecuteRequest{Name: name, Input: in})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		n++
		if n > 5 {
			t.Fatalf("more than 5 events")
		}
	}
	if n != 5 {
		t.Fatalf("%d events, want 5", n)
	}
}

func TestRun(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-run")
	registerEcho(t, name)
	res, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"greeting": "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.StepsCompleted != 1 || !reflect.DeepEqual(res.Output, map[string]any{"greeting": "hello"}) {
		t.Fatalf("result %+v", res)
	}
}

func TestGetStats(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-stats")
	registerEcho(t, name)
	for range 2 {
		if _, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := sharedClient.GetStats(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Workflows) != 1 || stats.Since.IsZero() {
		t.Fatalf("stats %+v", stats)
	}
	w := stats.Workflows[0]
	if w.Name != name || w.Started != 2 || w.Succeeded != 2 || w.Running != 0 || w.WindowSize != 2 || w.P50 > w.P99 || w.P99 == 0 {
		t.Fatalf("workflow stats %+v", w)
	}
	if _, err := sharedClient.GetStats(ctx, "go-no-such-workflow"); !wfm.IsNotFound(err) {
		t.Fatalf("unknown workflow: %v", err)
	}
}

func TestExecuteIdempotencyKey(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-idem")
	registerEcho(t, name)
	key := uniqueName(t, "req")
	a, err := sharedClient.StartExecution(ctx, name, wfm.ExecuteOptions{RequestID: key, Input: map[string]any{"x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sharedClient.StartExecution(ctx, name, wfm.ExecuteOptions{RequestID: key, Input: map[string]any{"x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Created || b.Created || a.ExecutionID != b.ExecutionID {
		t.Fatalf("first %+v, retry %+v: want the same execution, created once", a, b)
	}
	ex, err := sharedClient.GetExecution(ctx, a.ExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	if ex.RequestID != key {
		t.Errorf("request id %q, want %q", ex.RequestID, key)
	}
}

func TestUnknownWorkflowIsNotFound(t *testing.T) {
	ctx := ctxT(t)
	_, err := sharedClient.Execute(ctx, "go-does-not-exist", wfm.ExecuteOptions{})
	if !wfm.IsNotFound(err) || wfm.Code(err) != codes.NotFound {
		t.Fatalf("Execute: want NotFound, got %v (code %s)", err, wfm.Code(err))
	}
	if _, err := sharedClient.Run(ctx, "go-does-not-exist", wfm.ExecuteOptions{}); !wfm.IsNotFound(err) {
		t.Fatalf("Run: want NotFound, got %v", err)
	}
	if _, err := sharedClient.StartExecution(ctx, "go-does-not-exist", wfm.ExecuteOptions{}); !wfm.IsNotFound(err) {
		t.Fatalf("StartExecution: want NotFound, got %v", err)
	}
	if _, err := sharedClient.GetExecution(ctx, "00000000-0000-0000-0000-000000000000"); !wfm.IsNotFound(err) {
		t.Fatalf("GetExecution: want NotFound, got %v", err)
	}
	if _, err := sharedClient.WatchExecution(ctx, "00000000-0000-0000-0000-000000000000", 0); !wfm.IsNotFound(err) {
		t.Fatalf("WatchExecution: want NotFound, got %v", err)
	}
	// The helpers see through wrapping.
	wrapped := fmt.Errorf("while doing things: %w", err)
	if !wfm.IsNotFound(wrapped) {
		t.Fatalf("IsNotFound does not unwrap: %v", wrapped)
	}
}

func TestInputTooLargeIsInvalidArgument(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-big")
	registerEcho(t, name)
	big := map[string]any{"blob": strings.Repeat("x", 2*maxInputBytes)}
	_, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: big})
	if !wfm.IsInvalidArgument(err) {
		t.Fatalf("Execute: want InvalidArgument, got %v (code %s)", err, wfm.Code(err))
	}
	if _, err := sharedClient.StartExecution(ctx, name, wfm.ExecuteOptions{Input: big}); !wfm.IsInvalidArgument(err) {
		t.Fatalf("StartExecution: want InvalidArgument, got %v", err)
	}
	// A small input still runs.
	if _, err := sharedClient.Run(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"blob": "x"}}); err != nil {
		t.Fatal(err)
	}
}

// A server whose limits.max_message_bytes is above gRPC's default 4 MiB receive limit:
// the client reads what it sends (the server bounds its messages, the client does not).
func TestMessagesOverFourMiB(t *testing.T) {
	ctx := ctxT(t)
	srv := startTestServer(t,
		"WFM_LIMITS__MAX_MESSAGE_BYTES=33554432",
		"WFM_LIMITS__MAX_INPUT_BYTES=6291456",
		"WFM_LIMITS__MAX_OUTPUT_BYTES=16777216") // the result: output and step output
	c, err := wfm.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "big", Type: "echo"}); err != nil {
		t.Fatal(err)
	}
	blob := strings.Repeat("x", 5<<20)
	started, err := c.StartExecution(ctx, "big", wfm.ExecuteOptions{Input: map[string]any{"blob": blob}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Wait(ctx, started.ExecutionID)
	if err != nil {
		t.Fatalf("wait: %v (code %s)", err, wfm.Code(err))
	}
	if out, _ := res.Output.(map[string]any); out["blob"] != blob {
		t.Fatalf("output %.40v..., want the input back", res.Output)
	}
	ex, err := c.GetExecution(ctx, started.ExecutionID)
	if err != nil {
		t.Fatalf("get execution: %v (code %s)", err, wfm.Code(err))
	}
	if in, _ := ex.Input["blob"].(string); in != blob {
		t.Fatalf("input of %d bytes read back", len(in))
	}
}

func TestStartAndWatchAfterSequence(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-watch")
	registerEcho(t, name)
	started, err := sharedClient.StartExecution(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"w": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if !started.Created || started.ExecutionID == "" {
		t.Fatalf("start: %+v", started)
	}

	stream, err := sharedClient.WatchExecution(ctx, started.ExecutionID, 2)
	if err != nil {
		t.Fatal(err)
	}
	var events []*wfm.Event
	for ev, err := range stream.All() {
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	kinds, seqs := kindsAndSeqs(events)
	if !slices.Equal(seqs, []int64{3, 4, 5}) || !slices.Equal(kinds, echoKinds[2:]) {
		t.Fatalf("watch after 2: kinds %v seqs %v, want %v [3 4 5]", kinds, seqs, echoKinds[2:])
	}

	// From 0: everything; from the last sequence: nothing.
	full, err := sharedClient.WatchExecution(ctx, started.ExecutionID, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := full.Wait()
	if err != nil || !res.Success {
		t.Fatalf("watch from 0: %+v %v", res, err)
	}
	if full.Last().Sequence != 5 {
		t.Fatalf("watch from 0 ended at %d", full.Last().Sequence)
	}
	empty, err := sharedClient.WatchExecution(ctx, started.ExecutionID, 5)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := empty.Recv(); err != io.EOF {
		t.Fatalf("watch after the last sequence: %v %v, want io.EOF", ev, err)
	}
}

func TestWatchLiveExecution(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-watch-live")
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	started, err := sharedClient.StartExecution(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 500}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := sharedClient.WatchExecution(ctx, started.ExecutionID, 2)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	var kinds []wfm.EventKind
	for ev, err := range stream.All() {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ev.Sequence)
		kinds = append(kinds, ev.Kind)
	}
	if len(seqs) == 0 || seqs[0] != 3 || kinds[len(kinds)-1] != wfm.EventCompleted {
		t.Fatalf("live watch after 2: kinds %v seqs %v", kinds, seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("gap in sequences %v", seqs)
		}
	}
}

func TestCancelSleep(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-cancel")
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	stream, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 60000}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	id := stream.ExecutionID()

	// Wait until the step runs, then cancel.
	var kinds []wfm.EventKind
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("before cancel: %v (kinds %v)", err, kinds)
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == wfm.EventStepStarted {
			break
		}
		if ev.Terminal() {
			t.Fatalf("ended before cancel: %v", kinds)
		}
	}
	before := time.Now()
	st, err := sharedClient.CancelExecution(ctx, id, "go test says stop")
	if err != nil {
		t.Fatal(err)
	}
	if st != wfm.StatusCancelled {
		t.Fatalf("cancel returned %s, want CANCELLED", st)
	}

	res, err := stream.Wait()
	if !wfm.IsExecutionCancelled(err) {
		t.Fatalf("wait: want a cancelled ExecutionError, got %v", err)
	}
	if time.Since(before) > 10*time.Second {
		t.Fatalf("cancellation took %s", time.Since(before))
	}
	last := stream.Last()
	if last.Kind != wfm.EventCancelled || last.Reason != "go test says stop" {
		t.Fatalf("last event %+v, want cancelled with the reason", last)
	}
	if res != nil && res.Success {
		t.Errorf("cancelled result says success: %+v", res)
	}
	var ee *wfm.ExecutionError
	if !errors.As(err, &ee) || ee.ExecutionID != id || ee.Status != wfm.StatusCancelled {
		t.Errorf("execution error %+v", ee)
	}

	// Idempotent, and the record agrees.
	if st, err := sharedClient.CancelExecution(ctx, id, "again"); err != nil || st != wfm.StatusCancelled {
		t.Errorf("second cancel: %s %v", st, err)
	}
	ex, err := sharedClient.GetExecution(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != wfm.StatusCancelled {
		t.Errorf("execution status %s, want CANCELLED", ex.Status)
	}
	// Sequences of the whole run have no gaps and end with cancelled.
	full, err := sharedClient.WatchExecution(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	for ev, err := range full.All() {
		if err != nil {
			t.Fatal(err)
		}
		seq++
		if ev.Sequence != seq {
			t.Fatalf("replay: sequence %d at position %d", ev.Sequence, seq)
		}
	}
	if full.Last().Kind != wfm.EventCancelled {
		t.Fatalf("replay ends with %s", full.Last().Kind)
	}
}

// A step cut short by a cancel is a step_cancelled event (its attempt, and why), not a
// step_failed one.
func TestCancelSleepStepIsStepCancelled(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-step-cancelled")
	def := &wfm.Definition{Steps: []wfm.Step{
		{ID: "nap", Tool: &wfm.ToolAction{Name: "sleep", Arguments: map[string]any{"duration_ms": 60000}}},
	}}
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Definition: def}); err != nil {
		t.Fatal(err)
	}
	stream, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var events []*wfm.Event
	for ev, err := range stream.All() {
		if err != nil {
			t.Fatalf("%v (events so far %v)", err, events)
		}
		events = append(events, ev)
		if ev.Kind == wfm.EventStepStarted && ev.StepID == "nap" {
			if _, err := sharedClient.CancelExecution(ctx, ev.ExecutionID, "go test cuts it short"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(events) == 0 || events[len(events)-1].Kind != wfm.EventCancelled {
		t.Fatalf("events %v, want them to end with cancelled", events)
	}
	var cut *wfm.Event
	for _, ev := range events {
		switch ev.Kind {
		case wfm.EventStepFailed:
			t.Errorf("a cut-short step is not failed: %v", ev)
		case wfm.EventStepCancelled:
			cut = ev
		}
	}
	if cut == nil {
		t.Fatalf("no step_cancelled event in %v", events)
	}
	if cut.StepID != "nap" || cut.Attempt != 1 || cut.Reason != "the execution was cancelled while the step ran" {
		t.Errorf("step_cancelled %+v, want step nap, attempt 1, the cancel's reason", cut)
	}
	if got := cut.String(); !strings.Contains(got, "step_cancelled nap (the execution was cancelled while the step ran)") {
		t.Errorf("String() = %q", got)
	}
}

func TestCancelCompletedExecution(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-cancel-done")
	registerEcho(t, name)
	s, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := sharedClient.CancelExecution(ctx, s.ExecutionID(), "too late")
	if err != nil || st != wfm.StatusCompleted {
		t.Fatalf("cancel after completion: %s %v, want COMPLETED", st, err)
	}
}

func TestListExecutions(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-list-exec")
	registerEcho(t, name)
	var ids []string
	for i := range 3 {
		s, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"i": i}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Wait(); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ExecutionID())
	}
	var got []string
	for ex, err := range sharedClient.ListExecutions(ctx, wfm.ListExecutionsOptions{WorkflowName: name, PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if ex.WorkflowName != name || ex.Status != wfm.StatusCompleted {
			t.Errorf("listed %+v", ex)
		}
		got = append(got, ex.ID)
	}
	want := slices.Clone(ids)
	slices.Reverse(want) // newest first
	if !slices.Equal(got, want) {
		t.Fatalf("executions %v, want newest first %v", got, want)
	}
	page, err := sharedClient.ListExecutionsPage(ctx, wfm.ListExecutionsOptions{WorkflowName: name, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 2 || page.NextPageToken == "" {
		t.Fatalf("first page: %d executions, token %q", len(page.Executions), page.NextPageToken)
	}
	failed, err := sharedClient.ListExecutionsPage(ctx, wfm.ListExecutionsOptions{WorkflowName: name, Status: wfm.StatusFailed})
	if err != nil || len(failed.Executions) != 0 {
		t.Fatalf("failed filter: %v %v", failed, err)
	}
	future, err := sharedClient.ListExecutionsPage(ctx, wfm.ListExecutionsOptions{WorkflowName: name, CreatedAfter: time.Now().Add(time.Hour)})
	if err != nil || len(future.Executions) != 0 {
		t.Fatalf("created-after filter: %v %v", future, err)
	}
}

func TestDataAnalysis(t *testing.T) {
	ctx := ctxT(t)
	dir := filepath.Join(shared.DataDir, "datasets")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go_small.csv"), []byte("a,b,name\n1,2,x\n3,4,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := uniqueName(t, "go-analysis")
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "data_analysis"}); err != nil {
		t.Fatal(err)
	}
	s, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"dataset": "go_small"}})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for ev, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == wfm.EventStepCompleted {
			steps = append(steps, ev.StepID)
		}
	}
	res, err := s.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(steps, []string{"load", "validate", "analyze", "report"}) || res.StepsCompleted != 4 {
		t.Fatalf("steps %v, result %+v", steps, res)
	}
	out, _ := res.Output.(map[string]any)
	if out["rows"] != float64(2) {
		t.Fatalf("output %#v", res.Output)
	}

	// A missing dataset fails the execution: Run returns the result and an ExecutionError.
	res, err = sharedClient.Run(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"dataset": "go_missing"}})
	if err != nil && !wfm.IsExecutionFailed(err) {
		if wfm.IsInvalidArgument(err) || wfm.IsNotFound(err) || wfm.IsFailedPrecondition(err) {
			t.Logf("missing dataset rejected up front: %v", err)
			return
		}
		t.Fatalf("missing dataset: %v", err)
	}
	if err == nil {
		t.Fatalf("missing dataset succeeded: %+v", res)
	}
	if res == nil || res.Success || res.StepsFailed == 0 {
		t.Errorf("failed result %+v", res)
	}
}

func TestWorkflowTypesAndTools(t *testing.T) {
	ctx := ctxT(t)
	types, err := sharedClient.ListWorkflowTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ty := range types {
		names = append(names, ty.Name)
		if ty.Description == "" {
			t.Errorf("type %s without description", ty.Name)
		}
	}
	for _, want := range []string{"echo", "noop", "sleep", "data_analysis"} {
		if !slices.Contains(names, want) {
			t.Errorf("type %s missing from %v", want, names)
		}
	}
	tools, err := sharedClient.ListTools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools {
		if tool.Name == "" || tool.Server == "" {
			t.Errorf("tool %+v", tool)
		}
	}
	t.Logf("%d types, %d tools", len(types), len(tools))
}

func TestHealthAndReflection(t *testing.T) {
	ctx := ctxT(t)
	conn, err := grpc.NewClient(shared.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	for _, svc := range []string{"", "workflow.v1.WorkflowService"} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, resp, err)
		}
	}

	// v1
	s1, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r1, err := s1.Recv()
	if err != nil {
		t.Fatalf("reflection v1: %v", err)
	}
	var v1 []string
	for _, s := range r1.GetListServicesResponse().GetService() {
		v1 = append(v1, s.GetName())
	}
	if !slices.Contains(v1, "workflow.v1.WorkflowService") {
		t.Errorf("reflection v1 services %v", v1)
	}

	// v1alpha (older grpcurl, grpc_cli, Postman)
	s2, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "workflow.v1.WorkflowService"}}); err != nil {
		t.Fatal(err)
	}
	r2, err := s2.Recv()
	if err != nil {
		t.Fatalf("reflection v1alpha: %v", err)
	}
	if len(r2.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("reflection v1alpha: no file descriptor for workflow.v1.WorkflowService: %v", r2)
	}
	if err := s2.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r3, err := s2.Recv()
	if err != nil {
		t.Fatalf("reflection v1alpha list: %v", err)
	}
	var v1alpha []string
	for _, s := range r3.GetListServicesResponse().GetService() {
		v1alpha = append(v1alpha, s.GetName())
	}
	if !slices.Contains(v1alpha, "workflow.v1.WorkflowService") {
		t.Errorf("reflection v1alpha services %v", v1alpha)
	}
	t.Logf("reflection v1 lists %v; v1alpha lists %v", v1, v1alpha)
}

func TestDialOptions(t *testing.T) {
	ctx := ctxT(t)
	// http:// URLs, as the wfm CLI takes them.
	c, err := wfm.Dial("http://" + shared.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListWorkflowTypes(ctx); err != nil {
		t.Fatalf("http:// target: %v", err)
	}

	// A bearer token over plaintext only with the explicit insecure option;
	// the server does not check tokens yet, so the call succeeds.
	ci, err := wfm.Dial(shared.Addr, wfm.WithInsecureBearerToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer ci.Close()
	if _, err := ci.ListWorkflowTypes(ctx); err != nil {
		t.Fatalf("insecure bearer token: %v", err)
	}
	cs, err := wfm.Dial(shared.Addr, wfm.WithBearerToken("s3cret"))
	if err == nil {
		cs.Close()
		t.Fatal("Dial accepted a bearer token over plaintext without WithInsecureBearerToken")
	}
	if !strings.Contains(err.Error(), "WithInsecureBearerToken") {
		t.Fatalf("bearer token over plaintext: the error should name WithInsecureBearerToken: %v", err)
	}

	// TLS against the plaintext server fails with Unavailable, quickly.
	ct, err := wfm.Dial(shared.Addr, wfm.WithTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := ct.ListWorkflowTypes(short); !wfm.IsUnavailable(err) && !wfm.IsDeadlineExceeded(err) {
		t.Fatalf("TLS to a plaintext server: %v", err)
	}
}

func TestContextCancellation(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-ctx")
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := sharedClient.Run(short, name, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 3000}})
	if !wfm.IsDeadlineExceeded(err) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	// Leaving the stream does not cancel the execution: cancel it explicitly.
	for ex, err := range sharedClient.ListExecutions(ctx, wfm.ListExecutionsOptions{WorkflowName: name}) {
		if err != nil {
			t.Fatal(err)
		}
		if ex.Terminal() {
			t.Fatalf("execution %s ended with the caller's context: %s", ex.ID, ex.Status)
		}
		if _, err := sharedClient.CancelExecution(ctx, ex.ID, "cleanup"); err != nil {
			t.Fatal(err)
		}
	}
}

// Shutdown of a server this test started itself: the RPC answers, then the
// process exits 0 and the port stops answering.
func TestShutdown(t *testing.T) {
	ctx := ctxT(t)
	srv := startTestServer(t)
	c, err := wfm.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "nap", Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	// One short execution finishes during the grace period.
	if _, err := c.StartExecution(ctx, "nap", wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 300}}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Shutdown(ctx, wfm.WithGracePeriod(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shutdown: %+v", res)
	if res.Cancelled != 0 {
		t.Errorf("cancelled %d, want 0", res.Cancelled)
	}
	exit, err := srv.WaitExit(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if exit != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", exit, srv.Stderr())
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.ListWorkflowTypes(short); !wfm.IsUnavailable(err) && !wfm.IsDeadlineExceeded(err) {
		t.Fatalf("call after shutdown: %v", err)
	}
}

// Shutdown with a zero grace period cancels what still runs.
func TestShutdownCancelsRunning(t *testing.T) {
	ctx := ctxT(t)
	srv := startTestServer(t)
	c, err := wfm.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "long", Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	stream, err := c.Execute(ctx, "long", wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 60000}})
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range stream.All() {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == wfm.EventStepStarted {
			break
		}
	}
	res, err := c.Shutdown(ctx, wfm.WithGracePeriod(0))
	if err != nil {
		t.Fatal(err)
	}
	if res.Cancelled != 1 {
		t.Errorf("shutdown %+v, want 1 cancelled", res)
	}
	_, werr := stream.Wait()
	t.Logf("stream of the running execution after shutdown: %v", werr)
	if exit, err := srv.WaitExit(30 * time.Second); err != nil || exit != 0 {
		t.Fatalf("exit %d %v; stderr:\n%s", exit, err, srv.Stderr())
	}
}

// With max_concurrency 1, a second execution waits: accepted, queued, then runs.
func TestQueuedByMaxConcurrency(t *testing.T) {
	ctx := ctxT(t)
	name := uniqueName(t, "go-queue")
	if _, _, err := sharedClient.Register(ctx, wfm.RegisterOptions{Name: name, Type: "sleep", MaxConcurrency: 1}); err != nil {
		t.Fatal(err)
	}
	first, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 400}})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for ev, err := range first.All() { // until the first one holds the slot
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == wfm.EventStarted {
			break
		}
	}
	second, err := sharedClient.Execute(ctx, name, wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 0}})
	if err != nil {
		t.Fatal(err)
	}
	var events []*wfm.Event
	for ev, err := range second.All() {
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	kinds, seqs := kindsAndSeqs(events)
	// sleep may report step_progress; everything else is fixed.
	kinds = slices.DeleteFunc(kinds, func(k wfm.EventKind) bool { return k == wfm.EventStepProgress })
	want := []wfm.EventKind{wfm.EventAccepted, wfm.EventQueued, wfm.EventStarted, wfm.EventStepStarted, wfm.EventStepCompleted, wfm.EventCompleted}
	if !slices.Equal(kinds, want) {
		t.Fatalf("second execution: kinds %v, want %v", kinds, want)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("second execution: sequences %v, want 1..%d", seqs, len(seqs))
		}
	}
	if events[1].Reason == "" {
		t.Errorf("queued without a reason")
	}
	t.Logf("queued reason: %s", events[1].Reason)
	if _, err := first.Wait(); err != nil {
		t.Fatal(err)
	}
}
