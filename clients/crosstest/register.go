// Command register is the Go side of scripts/cross-language.sh.
//
//	register ADDR                  registers workflow cross-sleep (type sleep, label registered-by=go)
//	register ADDR get-execution ID prints the execution's workflow, version and status
//	register ADDR shutdown         shuts the server down (grace period 5s)
//
// Output is key=value lines, for the shell script to check.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/wfm-dev/wfm/clients/go/wfm"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: register ADDR [get-execution ID | shutdown]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "register: %v (code %v)\n", err, wfm.Code(err))
		os.Exit(1)
	}
}

func run(addr string, args []string) error {
	c, err := wfm.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	switch {
	case len(args) == 0:
		wf, created, err := c.Register(ctx, wfm.RegisterOptions{
			Name:      "cross-sleep",
			Type:      "sleep",
			Arguments: map[string]any{},
			Labels:    map[string]string{"registered-by": "go"},
		})
		if err != nil {
			return err
		}
		fmt.Printf("name=%s\nversion=%d\ncreated=%t\ntype=%s\n", wf.Name, wf.Version, created, wf.Type)
	case len(args) == 2 && args[0] == "get-execution":
		ex, err := c.GetExecution(ctx, args[1])
		if err != nil {
			return err
		}
		fmt.Printf("workflow=%s\nversion=%d\nstatus=%s\nlast_sequence=%d\n",
			ex.WorkflowName, ex.WorkflowVersion, ex.Status, ex.LastSequence)
	case len(args) == 1 && args[0] == "shutdown":
		res, err := c.Shutdown(ctx, wfm.WithGracePeriod(5*time.Second))
		if err != nil {
			return err
		}
		fmt.Printf("finished_during_grace=%d\ncancelled=%d\n", res.FinishedDuringGrace, res.Cancelled)
	default:
		return fmt.Errorf("unknown arguments %q", args)
	}
	return nil
}
