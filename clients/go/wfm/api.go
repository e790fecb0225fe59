package wfm

import (
	"context"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	workflowv1 "github.com/wfm-dev/wfm/clients/go/gen/workflow/v1"
)

// RegisterOptions describes a workflow to register: set exactly one of Type
// (a native workflow) and Definition (a declarative one).
type RegisterOptions struct {
	// Name of the workflow; empty means the type's own name (required with a Definition).
	Name string
	// Type is the workflow type compiled into the server (see ListWorkflowTypes), e.g. "echo".
	Type string
	// Arguments handed to the type's factory (with Type only).
	Arguments map[string]any
	// Definition is a declarative workflow: steps calling tools and other
	// workflows (see Definition and ParseDefinitionFile).
	Definition     *Definition
	Description    string
	Labels         map[string]string
	MaxConcurrency int // 0: only the global limit applies
}

// Register registers a workflow. Registering an existing name with different
// content creates a new version; identical content returns the existing
// version with created == false. Options that set both or neither of Type and
// Definition are refused with InvalidArgument before anything is sent.
func (c *Client) Register(ctx context.Context, opts RegisterOptions) (wf *Workflow, created bool, err error) {
	req := &workflowv1.RegisterRequest{
		Name:           opts.Name,
		Description:    opts.Description,
		Labels:         opts.Labels,
		MaxConcurrency: int32(opts.MaxConcurrency),
	}
	switch {
	case opts.Type != "" && opts.Definition != nil:
		return nil, false, invalidArgument("RegisterOptions: set Type (a native workflow) or Definition (a declarative one), not both")
	case opts.Definition != nil:
		if opts.Arguments != nil {
			return nil, false, invalidArgument("RegisterOptions: Arguments go with Type; a Definition takes none")
		}
		def, err := opts.Definition.toProto()
		if err != nil {
			return nil, false, err
		}
		req.Source = &workflowv1.RegisterRequest_Definition{Definition: def}
	case opts.Type != "":
		args, err := toStruct("arguments", opts.Arguments)
		if err != nil {
			return nil, false, err
		}
		req.Source = &workflowv1.RegisterRequest_Native{Native: &workflowv1.NativeSource{Type: opts.Type, Arguments: args}}
	default:
		return nil, false, invalidArgument("RegisterOptions: set Type (a native workflow, see ListWorkflowTypes) or Definition (a declarative one)")
	}
	resp, err := c.stub.Register(ctx, req)
	if err != nil {
		return nil, false, err
	}
	return fromWorkflow(resp.GetWorkflow()), resp.GetCreated(), nil
}

// Unregister removes a workflow (every version) and returns how many versions were removed.
func (c *Client) Unregister(ctx context.Context, name string) (int, error) {
	resp, err := c.stub.Unregister(ctx, &workflowv1.UnregisterRequest{Name: name})
	if err != nil {
		return 0, err
	}
	return int(resp.GetVersionsRemoved()), nil
}

// ListOptions filters and pages List.
type ListOptions struct {
	// PageSize is the number of workflows fetched per call; 0 means the server's default.
	PageSize int
	// PageToken resumes ListPage after a previous page (ignored by List).
	PageToken string
	// LabelFilter keeps only workflows carrying every one of these labels.
	LabelFilter map[string]string
}

// WorkflowPage is one page of List.
type WorkflowPage struct {
	Workflows     []*Workflow
	NextPageToken string // empty on the last page
}

// ListPage fetches one page of the latest version of every registered workflow.
func (c *Client) ListPage(ctx context.Context, opts ListOptions) (*WorkflowPage, error) {
	resp, err := c.stub.List(ctx, &workflowv1.ListRequest{
		PageSize:    int32(opts.PageSize),
		PageToken:   opts.PageToken,
		LabelFilter: opts.LabelFilter,
	})
	if err != nil {
		return nil, err
	}
	page := &WorkflowPage{NextPageToken: resp.GetNextPageToken()}
	for _, w := range resp.GetWorkflows() {
		page.Workflows = append(page.Workflows, fromWorkflow(w))
	}
	return page, nil
}

// List iterates over the latest version of every registered workflow,
// fetching every page. An error ends the iteration.
//
//	for wf, err := range c.List(ctx, wfm.ListOptions{}) { ... }
func (c *Client) List(ctx context.Context, opts ListOptions) iter.Seq2[*Workflow, error] {
	return func(yield func(*Workflow, error) bool) {
		opts.PageToken = ""
		for {
			page, err := c.ListPage(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, w := range page.Workflows {
				if !yield(w, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

// ListAll collects List into a slice.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) ([]*Workflow, error) {
	return collect(c.List(ctx, opts))
}

// Get returns the latest version of a workflow, with Versions set.
func (c *Client) Get(ctx context.Context, name string) (*Workflow, error) {
	return c.GetVersion(ctx, name, 0)
}

// GetVersion returns one version of a workflow (0: the latest), with Versions set.
func (c *Client) GetVersion(ctx context.Context, name string, version int) (*Workflow, error) {
	resp, err := c.stub.Get(ctx, &workflowv1.GetRequest{Name: name, Version: int32(version)})
	if err != nil {
		return nil, err
	}
	wf := fromWorkflow(resp.GetWorkflow())
	if wf == nil {
		wf = &Workflow{}
	}
	for _, v := range resp.GetVersions() {
		wf.Versions = append(wf.Versions, int(v))
	}
	return wf, nil
}

// ExecuteOptions are the parameters of an execution.
type ExecuteOptions struct {
	// Version of the workflow; 0 means the latest.
	Version int
	// Input is the workflow's input data. Values go through encoding/json:
	// []int, map[string]string, structs with json tags and the like work.
	Input map[string]any
	// Metadata is stored with the execution and not interpreted (like Input).
	Metadata map[string]any
	// RequestID is an optional idempotency key: a retry with the same key
	// attaches to the same execution.
	RequestID string
}

// Execute starts an execution of the named workflow and streams its events
// until the terminal one. It returns once the server has accepted the call
// (its response headers, not an event, have arrived), so that errors such as
// an unknown workflow (NotFound) or an invalid input (InvalidArgument) are
// returned here; the events, from the first, come from Recv or All.
// Cancelling ctx, or calling EventStream.Close, stops the stream (not the
// execution: use CancelExecution for that).
func (c *Client) Execute(ctx context.Context, name string, opts ExecuteOptions) (*EventStream, error) {
	input, err := toStruct("input", opts.Input)
	if err != nil {
		return nil, err
	}
	metadata, err := toStruct("metadata", opts.Metadata)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.stub.Execute(ctx, &workflowv1.ExecuteRequest{
		Name:      name,
		Version:   int32(opts.Version),
		Input:     input,
		Metadata:  metadata,
		RequestId: opts.RequestID,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return openEventStream(cancel, stream, "", func() (*workflowv1.ExecutionEvent, error) {
		resp, err := stream.Recv()
		return resp.GetEvent(), err
	})
}

// Run executes the named workflow, waits for it to finish and returns its
// result. An execution that ends failed or cancelled returns its result
// together with an *ExecutionError.
func (c *Client) Run(ctx context.Context, name string, opts ExecuteOptions) (*Result, error) {
	s, err := c.Execute(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	return s.Wait()
}

// Started tells which execution StartExecution started.
type Started struct {
	ExecutionID string
	// Created is false when RequestID matched an existing execution.
	Created bool
}

// StartExecution starts an execution and returns its id at once.
func (c *Client) StartExecution(ctx context.Context, name string, opts ExecuteOptions) (*Started, error) {
	input, err := toStruct("input", opts.Input)
	if err != nil {
		return nil, err
	}
	metadata, err := toStruct("metadata", opts.Metadata)
	if err != nil {
		return nil, err
	}
	resp, err := c.stub.StartExecution(ctx, &workflowv1.StartExecutionRequest{
		Name:      name,
		Version:   int32(opts.Version),
		Input:     input,
		Metadata:  metadata,
		RequestId: opts.RequestID,
	})
	if err != nil {
		return nil, err
	}
	return &Started{ExecutionID: resp.GetExecutionId(), Created: resp.GetCreated()}, nil
}

// GetExecution returns one execution with its status, timings and result so far.
func (c *Client) GetExecution(ctx context.Context, executionID string) (*Execution, error) {
	resp, err := c.stub.GetExecution(ctx, &workflowv1.GetExecutionRequest{ExecutionId: executionID})
	if err != nil {
		return nil, err
	}
	return fromExecution(resp.GetExecution()), nil
}

// ListExecutionsOptions filters and pages ListExecutions.
type ListExecutionsOptions struct {
	WorkflowName  string          // only executions of this workflow
	Status        ExecutionStatus // only executions in this status (StatusUnspecified: any)
	CreatedAfter  time.Time       // only executions created at or after this time (zero: no bound)
	CreatedBefore time.Time       // only executions created before this time (zero: no bound)
	PageSize      int             // per call; 0 means the server's default
	PageToken     string          // resumes ListExecutionsPage (ignored by ListExecutions)
}

// ExecutionPage is one page of ListExecutions.
type ExecutionPage struct {
	Executions    []*Execution
	NextPageToken string // empty on the last page
}

// ListExecutionsPage fetches one page of executions, newest first.
func (c *Client) ListExecutionsPage(ctx context.Context, opts ListExecutionsOptions) (*ExecutionPage, error) {
	req := &workflowv1.ListExecutionsRequest{
		WorkflowName: opts.WorkflowName,
		Status:       opts.Status,
		PageSize:     int32(opts.PageSize),
		PageToken:    opts.PageToken,
	}
	if !opts.CreatedAfter.IsZero() {
		req.CreateTimeStart = timestamppb.New(opts.CreatedAfter)
	}
	if !opts.CreatedBefore.IsZero() {
		req.CreateTimeEnd = timestamppb.New(opts.CreatedBefore)
	}
	resp, err := c.stub.ListExecutions(ctx, req)
	if err != nil {
		return nil, err
	}
	page := &ExecutionPage{NextPageToken: resp.GetNextPageToken()}
	for _, e := range resp.GetExecutions() {
		page.Executions = append(page.Executions, fromExecution(e))
	}
	return page, nil
}

// ListExecutions iterates over executions, newest first, fetching every page.
// An error ends the iteration.
func (c *Client) ListExecutions(ctx context.Context, opts ListExecutionsOptions) iter.Seq2[*Execution, error] {
	return func(yield func(*Execution, error) bool) {
		opts.PageToken = ""
		for {
			page, err := c.ListExecutionsPage(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range page.Executions {
				if !yield(e, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

// WatchExecution replays the events of an execution with a sequence number
// greater than afterSequence (0: all of them), then follows it live until the
// terminal event. Like Execute, it returns once the server has accepted the
// call, without waiting for an event: an unknown execution (NotFound) is
// reported here, while the next event of a queued execution, or of one in a
// long step, comes from Recv when it happens (cancel ctx or call Close to
// stop waiting). The stream of an execution that has ended with no event
// after afterSequence is empty (Recv returns io.EOF).
func (c *Client) WatchExecution(ctx context.Context, executionID string, afterSequence int64) (*EventStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.stub.WatchExecution(ctx, &workflowv1.WatchExecutionRequest{
		ExecutionId:   executionID,
		AfterSequence: afterSequence,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return openEventStream(cancel, stream, executionID, func() (*workflowv1.ExecutionEvent, error) {
		resp, err := stream.Recv()
		return resp.GetEvent(), err
	})
}

// Wait follows an execution started earlier (by StartExecution, or by another
// client) to its end and returns its result, like Run: a failed or cancelled
// execution returns its result together with an *ExecutionError, an unknown
// one NotFound. Cancelling ctx stops waiting, not the execution.
func (c *Client) Wait(ctx context.Context, executionID string) (*Result, error) {
	ex, err := c.GetExecution(ctx, executionID)
	if err != nil {
		return nil, err
	}
	// Replay from the last event known (the terminal one when it has ended), not from 0.
	s, err := c.WatchExecution(ctx, executionID, max(ex.LastSequence-1, 0))
	if err != nil {
		return nil, err
	}
	return s.Wait()
}

// CancelExecution cancels an execution cooperatively, with its child
// executions. It is idempotent and returns the status after the request:
// StatusCancelled, or the terminal status the execution had already reached.
func (c *Client) CancelExecution(ctx context.Context, executionID, reason string) (ExecutionStatus, error) {
	resp, err := c.stub.CancelExecution(ctx, &workflowv1.CancelExecutionRequest{ExecutionId: executionID, Reason: reason})
	if err != nil {
		return StatusUnspecified, err
	}
	return resp.GetStatus(), nil
}

// ListWorkflowTypes lists the workflow types compiled into the server.
func (c *Client) ListWorkflowTypes(ctx context.Context) ([]WorkflowType, error) {
	resp, err := c.stub.ListWorkflowTypes(ctx, &workflowv1.ListWorkflowTypesRequest{})
	if err != nil {
		return nil, err
	}
	var out []WorkflowType
	for _, t := range resp.GetWorkflowTypes() {
		out = append(out, WorkflowType{
			Name:            t.GetName(),
			Description:     t.GetDescription(),
			ArgumentsSchema: fromStruct(t.GetArgumentsSchema()),
		})
	}
	return out, nil
}

// ListTools lists the tools workflows can call.
func (c *Client) ListTools(ctx context.Context) ([]Tool, error) {
	resp, err := c.stub.ListTools(ctx, &workflowv1.ListToolsRequest{})
	if err != nil {
		return nil, err
	}
	var out []Tool
	for _, t := range resp.GetTools() {
		out = append(out, Tool{
			Name:        t.GetName(),
			Description: t.GetDescription(),
			InputSchema: fromStruct(t.GetInputSchema()),
			Server:      t.GetServer(),
		})
	}
	return out, nil
}

// ShutdownOption configures Shutdown.
type ShutdownOption func(*workflowv1.ShutdownRequest)

// WithGracePeriod lets running executions take up to d to finish before they
// are cancelled (default: the server's configured grace period; 0: cancel at once).
func WithGracePeriod(d time.Duration) ShutdownOption {
	return func(r *workflowv1.ShutdownRequest) { r.GracePeriod = durationpb.New(d) }
}

// WithResumeUnfinished chooses what happens to the executions still running
// when the grace period runs out: true stops them where they are, as a crash
// would, for the next server started on the same data directory to resume
// (steps at-least-once, a completed step never re-run), e.g. for an upgrade
// that keeps in-flight work; false cancels them. Without this option the
// server's configured `shutdown_unfinished` applies. A server with the
// in-memory store cancels them anyway (it keeps nothing to resume).
func WithResumeUnfinished(resume bool) ShutdownOption {
	return func(r *workflowv1.ShutdownRequest) { r.ResumeUnfinished = &resume }
}

// ShutdownResult is what Shutdown reports.
type ShutdownResult struct {
	FinishedDuringGrace int // executions that finished during the grace period
	Cancelled           int // executions cancelled when it ran out
	LeftToResume        int // executions stopped where they were, for the next server to resume
}

// Shutdown stops the server gracefully: drain, then cancel what is left after
// the grace period (or leave it to resume, see WithResumeUnfinished), exit. It
// returns once the server has answered.
func (c *Client) Shutdown(ctx context.Context, opts ...ShutdownOption) (*ShutdownResult, error) {
	req := &workflowv1.ShutdownRequest{}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.stub.Shutdown(ctx, req)
	if err != nil {
		return nil, err
	}
	return &ShutdownResult{
		FinishedDuringGrace: int(resp.GetFinishedDuringGrace()),
		Cancelled:           int(resp.GetCancelled()),
		LeftToResume:        int(resp.GetLeftToResume()),
	}, nil
}

func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// GetStats returns per-workflow execution counts and p50/p99 durations: of one
// workflow, or of every registered workflow when workflowName is empty.
func (c *Client) GetStats(ctx context.Context, workflowName string) (*Stats, error) {
	resp, err := c.stub.GetStats(ctx, &workflowv1.GetStatsRequest{WorkflowName: workflowName})
	if err != nil {
		return nil, err
	}
	out := &Stats{Since: fromTime(resp.GetSince())}
	for _, w := range resp.GetWorkflows() {
		out.Workflows = append(out.Workflows, WorkflowStats{
			Name:       w.GetWorkflowName(),
			Started:    w.GetStarted(),
			Succeeded:  w.GetSucceeded(),
			Failed:     w.GetFailed(),
			Cancelled:  w.GetCancelled(),
			Running:    w.GetRunning(),
			P50:        fromDuration(w.GetP50Duration()),
			P99:        fromDuration(w.GetP99Duration()),
			WindowSize: int(w.GetWindowSize()),
		})
	}
	return out, nil
}
