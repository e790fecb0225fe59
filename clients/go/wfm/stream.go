package wfm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
)

// ErrNoTerminalEvent is returned by EventStream.Wait when the stream ended
// without a completed, failed or cancelled event.
var ErrNoTerminalEvent = errors.New("wfm: event stream ended without a terminal event")

// EventStream is the live stream of an execution's events, from Execute or
// WatchExecution. Read it with Recv or range over All; it ends (io.EOF) after
// the terminal event. It is not safe for concurrent use.
type EventStream struct {
	cancel   context.CancelFunc
	recv     func() (*workflowv1.ExecutionEvent, error)
	peeked   *Event
	err      error // sticky: io.EOF or the error that ended the stream
	last     *Event
	terminal *Event
	execID   string
}

func newEventStream(cancel context.CancelFunc, recv func() (*workflowv1.ExecutionEvent, error)) (*EventStream, error) {
	s := &EventStream{cancel: cancel, recv: recv}
	ev, err := s.next()
	if err != nil && err != io.EOF {
		cancel()
		return nil, err
	}
	if ev != nil {
		s.peeked = ev
		s.execID = ev.ExecutionID
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

// ExecutionID is the id of the execution the stream follows ("" when the
// stream had no event at all).
func (s *EventStream) ExecutionID() string { return s.execID }

// Recv returns the next event, or io.EOF once the stream has ended after the
// terminal event. Other errors are gRPC status errors (see Code).
func (s *EventStream) Recv() (*Event, error) {
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
	if s.execID == "" {
		s.execID = ev.ExecutionID
	}
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
	if s.err == nil {
		s.err = io.EOF
	}
	s.peeked = nil
	s.cancel()
}
