package wfm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
)

// ErrNoTerminalEvent is returned by EventStream.Wait when the stream ended
// without a completed, failed or cancelled event.
var ErrNoTerminalEvent = errors.New("wfm: event stream ended without a terminal event")

// EventStream is the live stream of an execution's events, from Execute or
// WatchExecution. Read it with Recv or range over All; it ends (io.EOF) after
// the terminal event. It is not safe for concurrent use, except that Close and
// ExecutionID may be called while another goroutine waits in Recv.
type EventStream struct {
	recvMu   sync.Mutex // held while receiving: by Recv, and by ExecutionID when it waits for the first event
	cancel   context.CancelFunc
	recv     func() (*workflowv1.ExecutionEvent, error)
	peeked   *Event
	err      error // sticky: io.EOF or the error that ended the stream
	last     *Event
	terminal *Event
	execID   atomic.Pointer[string]
}

// openEventStream returns the stream of a call once the server has accepted
// it. It waits for the response headers, not for the first event: the server
// sends them as soon as it has taken the call (for Execute, together with the
// first event), whereas the first event of a queued execution, or the next one
// of an execution in a long step, can take as long as the execution itself. A
// call the server refuses (NotFound, InvalidArgument, ...) gets no headers, only
// its status, and that error is returned here. executionID is the id the
// stream follows when it is known in advance ("" for Execute).
func openEventStream(cancel context.CancelFunc, call grpc.ClientStream, executionID string, recv func() (*workflowv1.ExecutionEvent, error)) (*EventStream, error) {
	s := &EventStream{cancel: cancel, recv: recv}
	if executionID != "" {
		s.execID.Store(&executionID)
	}
	// Header blocks until the headers arrive or the call ends; it reports no
	// error itself. No headers means the call ended (a refused call, a
	// cancelled context): the status is then there for Recv, which cannot wait.
	if md, _ := call.Header(); md == nil {
		ev, err := s.next()
		if err != nil && err != io.EOF {
			cancel()
			return nil, err
		}
		s.peeked = ev
	}
	return s, nil
}

func (s *EventStream) next() (*Event, error) {
	if s.err != nil {
		return nil, s.err
	}
	pe, err := s.recv()
	if err != nil {
		s.err = err
		s.cancel()
		return nil, err
	}
	if pe == nil {
		s.err = errors.New("wfm: server sent a response without an event")
		s.cancel()
		return nil, s.err
	}
	return fromEvent(pe), nil
}

// ExecutionID is the id of the execution the stream follows. For
// WatchExecution it is the id asked for. For Execute it is the id carried by
// the events: when none has been received yet, ExecutionID waits for the
// first one (the server sends it with the response, so this does not wait for
// the execution to progress), keeps it for Recv, and returns "" when the
// stream ends or fails first (Recv then returns the error).
func (s *EventStream) ExecutionID() string {
	if id := s.execID.Load(); id != nil {
		return *id
	}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if id := s.execID.Load(); id != nil {
		return *id
	}
	if s.peeked == nil && s.last == nil && s.err == nil {
		if ev, err := s.next(); err == nil {
			s.peeked = ev
			s.setExecID(ev.ExecutionID)
		}
	}
	if id := s.execID.Load(); id != nil {
		return *id
	}
	return ""
}

func (s *EventStream) setExecID(id string) {
	if id != "" && s.execID.Load() == nil {
		s.execID.Store(&id)
	}
}

// Recv returns the next event, or io.EOF once the stream has ended after the
// terminal event. Other errors are gRPC status errors (see Code).
func (s *EventStream) Recv() (*Event, error) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	var ev *Event
	if s.peeked != nil {
		ev, s.peeked = s.peeked, nil
	} else {
		if s.terminal != nil && s.err == nil {
			// The stream ends after the terminal event: do not wait for the server to say so.
			s.err = io.EOF
			s.cancel()
		}
		var err error
		if ev, err = s.next(); err != nil {
			return nil, err
		}
	}
	s.setExecID(ev.ExecutionID)
	s.last = ev
	if ev.Terminal() {
		s.terminal = ev
	}
	return ev, nil
}

// All iterates over the remaining events. The iteration stops after the
// terminal event; an error other than the end of the stream is yielded once, last.
//
//	for ev, err := range stream.All() { ... }
func (s *EventStream) All() iter.Seq2[*Event, error] {
	return func(yield func(*Event, error) bool) {
		for {
			ev, err := s.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Wait reads the remaining events and returns the execution's result. An
// execution that ended failed or cancelled returns its result together with
// an *ExecutionError.
func (s *EventStream) Wait() (*Result, error) {
	for s.terminal == nil {
		if _, err := s.Recv(); err != nil {
			if err == io.EOF {
				return nil, ErrNoTerminalEvent
			}
			return nil, err
		}
	}
	s.Close()
	t := s.terminal
	switch t.Kind {
	case EventCompleted:
		return t.Result, nil
	case EventFailed, EventCancelled:
		msg := t.Error
		if t.Kind == EventCancelled {
			msg = t.Reason
		}
		return t.Result, &ExecutionError{ExecutionID: t.ExecutionID, Status: t.Status(), Message: msg, Result: t.Result}
	}
	return nil, fmt.Errorf("wfm: unexpected terminal event %s", t.Kind)
}

// Last is the last event received (nil before the first one).
func (s *EventStream) Last() *Event { return s.last }

// Close stops receiving; it does not cancel the execution. It is safe to call more than once.
func (s *EventStream) Close() {
	s.cancel() // first: it ends a Recv waiting in another goroutine
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.err == nil {
		s.err = io.EOF
	}
	s.peeked = nil
}
