// Package optcheck is the shared vocabulary of the parts' Options.Validate methods:
// the kinds of problem (sentinel errors) and FieldError, one problem with one field,
// named as its configuration key is (max_connections, not MaxConnections). So
// internal/config can name the key in full (mqtt.max_connections) and callers can
// test the kind with errors.Is, whichever part reported it.
package optcheck

import (
	"errors"
	"fmt"
	"time"
)

// The kinds of problem a field can have.
var (
	ErrInvalidAddress = errors.New("invalid address")
	ErrOutOfRange     = errors.New("out of range")
	ErrInvalidChoice  = errors.New("not one of the allowed values")
)

// FieldError is a problem with one field: the field, the value given and what is
// wrong with it (an error wrapping one of the kinds above, or a part's own).
type FieldError struct {
	Field string
	Value any
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Field, fmt.Sprint(e.Value), e.Err)
}

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors collects every problem of a set of options, in the order they are found.
type Errors []error

// Add records that field has value v, which err says is wrong.
func (es *Errors) Add(field string, v any, err error) {
	*es = append(*es, &FieldError{Field: field, Value: v, Err: err})
}

// Range records an ErrOutOfRange when v is outside [lo, hi]; the message gives the
// bounds as %v prints them.
func (es *Errors) Range(field string, v, lo, hi float64) {
	if v < lo || v > hi {
		es.Add(field, v, fmt.Errorf("%w: want %v to %v", ErrOutOfRange, lo, hi))
	}
}

// Duration records an ErrOutOfRange when d is outside [lo, hi]; want says the range
// as users write it ("100ms to 1h").
func (es *Errors) Duration(field string, d, lo, hi time.Duration, want string) {
	if d < lo || d > hi {
		es.Add(field, d, fmt.Errorf("%w: want %s", ErrOutOfRange, want))
	}
}

// Err returns the problems joined, or nil when there is none.
func (es Errors) Err() error { return errors.Join(es...) }

// Fields returns the fields of the FieldErrors in err (one error or a join), in order.
func Fields(err error) []string {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fields []string
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			fields = append(fields, fe.Field)
		}
	}
	return fields
}
