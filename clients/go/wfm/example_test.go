package wfm_test

import (
	"context"
	"fmt"
	"log"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

// The README's example (compiled, not run: it needs a server on 127.0.0.1:50051).
func Example() {
	c, err := wfm.Dial("127.0.0.1:50051") // options: see "Connecting" in the README
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "hello", Type: "echo"}); err != nil {
		log.Fatal(err)
	}
	stream, err := c.Execute(ctx, "hello", wfm.ExecuteOptions{Input: map[string]any{"greeting": "hi"}})
	if wfm.IsNotFound(err) {
		log.Fatal("no workflow named hello")
	} else if err != nil {
		log.Fatal(wfm.Code(err), err)
	}
	for ev, err := range stream.All() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev) // #1 accepted, #2 started, #3 step_started echo, ...
	}
	res, err := stream.Wait() // or in one call: c.Run(ctx, "hello", opts)
	if err != nil {
		log.Fatal(err) // *wfm.ExecutionError when it failed or was cancelled
	}
	fmt.Println(res.Output) // map[greeting:hi]
}

// The same, run against the suite's server.
func ExampleClient_Execute() {
	c, err := wfm.Dial(shared.Addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "example-hello", Type: "echo"}); err != nil {
		log.Fatal(err)
	}
	stream, err := c.Execute(ctx, "example-hello", wfm.ExecuteOptions{Input: map[string]any{"greeting": "hi"}})
	if err != nil {
		log.Fatal(wfm.Code(err), err)
	}
	for ev, err := range stream.All() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev)
	}
	res, err := stream.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Output)
	_, err = c.Execute(ctx, "example-missing", wfm.ExecuteOptions{})
	fmt.Println(wfm.IsNotFound(err), wfm.Code(err))
	// Output:
	// #1 accepted
	// #2 started
	// #3 step_started echo
	// #4 step_completed echo
	// #5 completed
	// map[greeting:hi]
	// true NotFound
}

// A declarative workflow, built in Go and run against the suite's server.
func ExampleDefinition() {
	c, err := wfm.Dial(shared.Addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	def := &wfm.Definition{
		Steps: []wfm.Step{
			{ID: "square", ForEach: "{{ input.numbers }}", Tool: &wfm.ToolAction{
				Name: "json_transform", Arguments: map[string]any{"data": "{{ item }}", "expression": "data * data"},
			}},
			{ID: "total", DependsOn: []string{"square"}, Tool: &wfm.ToolAction{
				Name: "json_transform", Arguments: map[string]any{"data": "{{ steps.square.output }}", "expression": "data | sum"},
			}},
		},
		Output: map[string]any{"squares": "{{ steps.square.output }}", "total": "{{ steps.total.output }}"},
	}
	if _, _, err := c.Register(ctx, wfm.RegisterOptions{Name: "example-squares", Definition: def}); err != nil {
		log.Fatal(wfm.Code(err), err)
	}
	res, err := c.Run(ctx, "example-squares", wfm.ExecuteOptions{Input: map[string]any{"numbers": []int{3, 1, 4}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Output)
	wf, err := c.Get(ctx, "example-squares")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wf.Source, len(wf.Definition.Steps), wf.Definition.Steps[1].DependsOn)
	// Output:
	// map[squares:[9 1 16] total:26]
	// definition 2 [square]
}
