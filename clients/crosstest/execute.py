"""Python side of scripts/cross-language.sh.

    execute.py ADDR WORKFLOW DURATION_MS

Starts an execution with StartExecution and prints ``execution_id=<id>`` at once
(flushed, so the script can start the TypeScript watcher), then waits for it with
the client's ``wait`` and prints the result and the execution record as
key=value lines.
"""

from __future__ import annotations

import sys

from wfm_client import Client, WfmError


def main() -> int:
    addr, workflow, duration_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Client(addr, timeout=30) as client:
        started = client.start_execution(workflow, {"duration_ms": duration_ms})
        print(f"execution_id={started.execution_id}", flush=True)
        print(f"created={started.created}", flush=True)

        kinds: list[str] = []
        result = client.wait(started.execution_id, timeout=60, on_event=lambda e: kinds.append(e.kind))
        print(f"wait_success={result.success}")
        print(f"wait_error={result.error}")
        print(f"wait_events={','.join(kinds)}")

        execution = client.get_execution(started.execution_id)
        print(f"workflow={execution.workflow_name}")
        print(f"version={execution.workflow_version}")
        print(f"status={execution.status.name}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except WfmError as e:
        print(f"execute.py: {e.code.name}: {e.message}", file=sys.stderr)
        sys.exit(1)
