export {
  WfmClient,
  nativeSource,
  type WfmClientOptions,
  type RegisterInput,
  type ExecuteOptions,
  type RunOptions,
  type WaitOptions,
  type RunResult,
  type ListOptions,
  type ListExecutionsOptions,
  type Page,
  type ShutdownOptions,
  type ShutdownResult,
} from "./client.js";
export {
  definitionSource,
  definitionFile,
  definitionOf,
  type DefinitionInput,
  type DefinitionFile,
  type StepInput,
  type RetryInput,
  type DurationInput,
} from "./definition.js";
export {
  ExecutionStatus,
  StepStatus,
  TERMINAL_EVENT_KINDS,
  isTerminalEvent,
  type Workflow,
  type WorkflowSource,
  type Execution,
  type ExecutionEvent,
  type ExecutionEventKind,
  type ExecutionResult,
  type StepResult,
  type Stats,
  type WorkflowStats,
} from "./model.js";
export * from "./errors.js";
export { ConnectError } from "@connectrpc/connect";
export type { JsonObject, JsonValue } from "@bufbuild/protobuf";
export type { WorkflowType, Tool } from "./gen/workflow/v1/workflow_service_pb.js";
/** The generated messages and service descriptor (protobuf-es v2), for use with `WfmClient.raw`. */
export * as pb from "./gen/workflow/v1/workflow_service_pb.js";
