package wfm_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

// waitStatus polls an execution until it reaches want.
func waitStatus(ctx context.Context, t *testing.T, c *wfm.Client, id string, want wfm.ExecutionStatus) *wfm.Execution {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ex, err := c.GetExecution(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Status == want {
			return ex
		}
		if ex.Terminal() || time.Now().After(deadline) {
			t.Fatalf("execution %s is %s, waited for %s", id, ex.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStepStarted polls an execution until its sleep step runs (status
// running and a step_started event recorded).
func waitStepStarted(ctx context.Context, t *testing.T, c *wfm.Client, id string) *wfm.Execution {
	t.Helper()
	s, err := c.WatchExecution(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("execution %s before its step started: %v", id, err)
		}
		if ev.Kind == wfm.EventStepStarted {
			break
		}
	}
	return waitStatus(ctx, t, c, id, wfm.StatusRunning)
}

// watchWithin calls WatchExecution in the background and fails the test when
// it does not return within limit.
func watchWithin(ctx context.Context, t *testing.T, c *wfm.Client, id string, after int64, limit time.Duration) *wfm.EventStream {
	t.Helper()
	type opened struct {
		s   *wfm.EventStream
		err error
	}
	done := make(chan opened, 1)
	start := time.Now()
	go func() {
		s, err := c.WatchExecution(ctx, id, after)
		done <- opened{s, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("WatchExecution(%s, %d): %v", id, after, o.err)
		}
		t.Logf("WatchExecution(%s, %d) returned after %s", id, after, time.Since(start).Round(time.Millisecond))
		return o.s
	case <-time.After(limit):
		t.Fatalf("WatchExecution(%s, %d) did not return within %s: it waits for the next event instead of returning the stream", id, after, limit)
		return nil
	}
}

// WatchExecution returns the stream as soon as the server took the call, even
// when no event is due for a long time: after the last event of a queued
// execution, or of one in a long step. The next event comes from Recv, and
// Close ends a Recv that waits for it.
func TestWatchReturnsBeforeTheNextEvent(t *testing.T) {
	srv := startTestServer(t, "WFM_LIMITS__MAX_CONCURRENT_EXECUTIONS=1")
	c, err := wfm.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "nap", Type: "sleep"}); err != nil {
		t.Fatal(err)
	}
	const sleep = 20 * time.Second
	const limit = 5 * time.Second
	input := map[string]any{"duration_ms": sleep.Milliseconds()}
	first, err := c.StartExecution(ctx, "nap", wfm.ExecuteOptions{Input: input})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CancelExecution(context.Background(), first.ExecutionID, "test over")
	running := waitStepStarted(ctx, t, c, first.ExecutionID)

	second, err := c.StartExecution(ctx, "nap", wfm.ExecuteOptions{Input: input})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CancelExecution(context.Background(), second.ExecutionID, "test over")
	queued := waitStatus(ctx, t, c, second.ExecutionID, wfm.StatusQueued)

	// The queued execution, after its last event: nothing comes until the first one ends.
	s := watchWithin(ctx, t, c, second.ExecutionID, queued.LastSequence, limit)
	if got := s.ExecutionID(); got != second.ExecutionID {
		t.Errorf("ExecutionID() = %q, want %q", got, second.ExecutionID)
	}
	// Recv waits for the next event; Close, from another goroutine, ends the wait.
	type received struct {
		ev  *wfm.Event
		err error
	}
	got := make(chan received, 1)
	go func() {
		ev, err := s.Recv()
		got <- received{ev, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("Recv after the last event of a queued execution returned at once: %v %v", r.ev, r.err)
	case <-time.After(500 * time.Millisecond):
	}
	s.Close()
	select {
	case r := <-got:
		if r.err == nil {
			t.Fatalf("Recv after Close: event %v, want an error", r.ev)
		}
	case <-time.After(limit):
		t.Fatal("Close did not end a waiting Recv")
	}

	// The running execution, after its last event, in the middle of its step.
	s2 := watchWithin(ctx, t, c, first.ExecutionID, running.LastSequence, limit)
	s2.Close()
	if ev, err := s2.Recv(); err != io.EOF {
		t.Fatalf("Recv after Close: %v %v, want io.EOF", ev, err)
	}

	// An unknown execution is still reported by WatchExecution itself.
	if _, err := c.WatchExecution(ctx, "00000000-0000-0000-0000-000000000000", 0); !wfm.IsNotFound(err) {
		t.Fatalf("WatchExecution of an unknown id: want NotFound, got %v", err)
	}

	// Execute of a workflow whose slot is taken returns with the execution's id.
	stream, err := c.Execute(ctx, "nap", wfm.ExecuteOptions{Input: input})
	if err != nil {
		t.Fatal(err)
	}
	third := stream.ExecutionID()
	if third == "" {
		t.Fatal("Execute: no execution id")
	}
	defer c.CancelExecution(context.Background(), third, "test over")
	ev, err := stream.Recv()
	if err != nil || ev.Kind != wfm.EventAccepted || ev.Sequence != 1 || ev.ExecutionID != third {
		t.Fatalf("Execute: first event %v %v, want #1 accepted of %s", ev, err, third)
	}
	stream.Close()

	for _, id := range []string{second.ExecutionID, first.ExecutionID, third} {
		if st, err := c.CancelExecution(ctx, id, "test over"); err != nil || st != wfm.StatusCancelled {
			t.Fatalf("cancel %s: %s %v", id, st, err)
		}
	}
}

// Shutdown(WithResumeUnfinished(true)) stops a running execution where it is
// instead of cancelling it, reports it in LeftToResume, and the next server on
// the same data directory runs it to its end.
func TestShutdownResumeUnfinished(t *testing.T) {
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
	started, err := c.StartExecution(ctx, "nap", wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 2000}})
	if err != nil {
		t.Fatal(err)
	}
	waitStepStarted(ctx, t, c, started.ExecutionID)
	res, err := c.Shutdown(ctx, wfm.WithGracePeriod(0), wfm.WithResumeUnfinished(true))
	if err != nil {
		t.Fatal(err)
	}
	if res.LeftToResume != 1 || res.Cancelled != 0 {
		t.Fatalf("shutdown %+v, want 1 left to resume and 0 cancelled", res)
	}
	if exit, err := srv.WaitExit(30 * time.Second); err != nil || exit != 0 {
		t.Fatalf("exit %d %v; stderr:\n%s", exit, err, srv.Stderr())
	}

	next, err := startServer(srv.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		next.Kill()
		if t.Failed() {
			t.Logf("second server stderr:\n%s", next.Stderr())
		}
	})
	c2, err := wfm.Dial(next.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	out, err := c2.Wait(ctx, started.ExecutionID)
	if err != nil || !out.Success {
		t.Fatalf("the resumed execution: %+v %v, want success", out, err)
	}
}

// WithResumeUnfinished(false) is sent as such: it overrides a server whose
// configuration resumes unfinished executions, and they are cancelled. Without
// the option, that configuration applies.
func TestShutdownResumeUnfinishedFalse(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		opts                    []wfm.ShutdownOption
		cancelled, leftToResume int
	}{
		{"false", []wfm.ShutdownOption{wfm.WithGracePeriod(0), wfm.WithResumeUnfinished(false)}, 1, 0},
		{"unset", []wfm.ShutdownOption{wfm.WithGracePeriod(0)}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			srv := startTestServer(t, "WFM_SHUTDOWN_UNFINISHED=resume")
			c, err := wfm.Dial(srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "nap", Type: "sleep"}); err != nil {
				t.Fatal(err)
			}
			started, err := c.StartExecution(ctx, "nap", wfm.ExecuteOptions{Input: map[string]any{"duration_ms": 60000}})
			if err != nil {
				t.Fatal(err)
			}
			waitStepStarted(ctx, t, c, started.ExecutionID)
			res, err := c.Shutdown(ctx, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Cancelled != tc.cancelled || res.LeftToResume != tc.leftToResume {
				t.Fatalf("shutdown %+v, want %d cancelled and %d left to resume", res, tc.cancelled, tc.leftToResume)
			}
			if exit, err := srv.WaitExit(30 * time.Second); err != nil || exit != 0 {
				t.Fatalf("exit %d %v; stderr:\n%s", exit, err, srv.Stderr())
			}
		})
	}
}
