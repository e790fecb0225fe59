package wfm

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// invalidArgument is an INVALID_ARGUMENT status made by the client itself, for
// options it cannot send; IsInvalidArgument and Code treat it as the server's.
func invalidArgument(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "wfm: "+format, args...)
}

// Code returns the gRPC status code of err: codes.OK for nil, codes.Unknown
// for an error that carries no status. Wrapped status errors are found too.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	// status.FromError also unwraps; a non-status error with a status inside is covered there.
	return codes.Unknown
}

// Message returns the message of err's gRPC status (err.Error() when it has none).
func Message(err error) string {
	if err == nil {
		return ""
	}
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// Status returns err's gRPC status, with its details (nil for nil).
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	s, _ := status.FromError(err)
	return s
}

// IsNotFound tells whether err is a NOT_FOUND status (unknown workflow, version or execution).
func IsNotFound(err error) bool { return Code(err) == codes.NotFound }

// IsInvalidArgument tells whether err is an INVALID_ARGUMENT status (bad name, input too large, ...).
func IsInvalidArgument(err error) bool { return Code(err) == codes.InvalidArgument }

// IsAlreadyExists tells whether err is an ALREADY_EXISTS status.
func IsAlreadyExists(err error) bool { return Code(err) == codes.AlreadyExists }

// IsFailedPrecondition tells whether err is a FAILED_PRECONDITION status.
func IsFailedPrecondition(err error) bool { return Code(err) == codes.FailedPrecondition }

// IsResourceExhausted tells whether err is a RESOURCE_EXHAUSTED status (a limit was reached).
func IsResourceExhausted(err error) bool { return Code(err) == codes.ResourceExhausted }

// IsUnauthenticated tells whether err is an UNAUTHENTICATED status (missing or bad token).
func IsUnauthenticated(err error) bool { return Code(err) == codes.Unauthenticated }

// IsPermissionDenied tells whether err is a PERMISSION_DENIED status.
func IsPermissionDenied(err error) bool { return Code(err) == codes.PermissionDenied }

// IsUnavailable tells whether err is an UNAVAILABLE status (server unreachable or shutting down).
func IsUnavailable(err error) bool { return Code(err) == codes.Unavailable }

// IsCanceled tells whether err is a CANCELLED status or context.Canceled.
func IsCanceled(err error) bool {
	return Code(err) == codes.Canceled || errors.Is(err, context.Canceled)
}

// IsDeadlineExceeded tells whether err is a DEADLINE_EXCEEDED status or context.DeadlineExceeded.
func IsDeadlineExceeded(err error) bool {
	return Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
}

// IsExecutionFailed tells whether err is an *ExecutionError for a failed execution.
func IsExecutionFailed(err error) bool {
	var e *ExecutionError
	return errors.As(err, &e) && e.Status == StatusFailed
}

// IsExecutionCancelled tells whether err is an *ExecutionError for a cancelled execution.
func IsExecutionCancelled(err error) bool {
	var e *ExecutionError
	return errors.As(err, &e) && e.Status == StatusCancelled
}
