package ingest

import (
	"errors"
)

// ErrQueueFull is returned when an event found no room in the queue within the
// configured wait: the daemon is overloaded and the event was not accepted.
var ErrQueueFull = errors.New("ingest queue full")

// ErrClosed is returned for events submitted after the writer began shutting down.
var ErrClosed = errors.New("ingest writer closed")

// Code is a stable, machine-readable reason for rejecting an event. It is the reason
// label of arina_events_rejected_total and the code of HTTP JSON errors.
type Code string

// Rejection codes.
const (
	CodeBadJSON         Code = "bad_json"          // the payload or body is not a JSON object
	CodeBadPayload      Code = "bad_payload"       // the MQTT payload is neither JSON nor "add|remove <user>"
	CodeMissingField    Code = "missing_field"     // a required field is absent or empty
	CodeInvalidField    Code = "invalid_field"     // a field has the wrong type or value
	CodeInvalidID       Code = "invalid_id"        // an identifier breaks the identifier rules
	CodeInvalidAction   Code = "invalid_action"    // action is not add or remove
	CodeIDMismatch      Code = "id_mismatch"       // payload ids disagree with the MQTT topic
	CodePayloadTooLarge Code = "payload_too_large" // the payload or body is over its size limit
	CodeNotAuthorized   Code = "not_authorized"    // a batch item names a (content, reaction) the client may not write
	CodeOverload        Code = "overload"          // the queue stayed full (ErrQueueFull)
	CodeShuttingDown    Code = "shutting_down"     // the writer is closed (ErrClosed)
	CodeStoreError      Code = "store_error"       // the store failed to apply the batch
)

// Error is a rejected event: bad input that no retry can fix.
type Error struct {
	Code  Code
	Field string // the offending JSON field, if any
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + " " + e.Msg
	}
	return e.Msg
}

// CodeOf returns the rejection code of err.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrQueueFull):
		return CodeOverload
	case errors.Is(err, ErrClosed):
		return CodeShuttingDown
	}
	return CodeStoreError
}
