package optcheck

import (
	"errors"
	"testing"
	"time"
)

// TestErrors: each helper records a FieldError naming the field and the value only
// when the value is wrong, and Err joins them in order.
func TestErrors(t *testing.T) {
	var es Errors
	es.Range("in", 5, 1, 10)
	es.Duration("in_d", time.Second, time.Millisecond, time.Minute, "1ms to 1m")
	if err := es.Err(); err != nil {
		t.Fatalf("values in range: Err() = %v, want nil", err)
	}
	es.Range("low", 0, 1, 1<<24)
	es.Duration("long", 2*time.Hour, time.Second, time.Hour, "1s to 1h")
	es.Add("mode", "x", ErrInvalidChoice)
	err := es.Err()
	want := "low \"0\": out of range: want 1 to 1.6777216e+07\n" +
		"long \"2h0m0s\": out of range: want 1s to 1h\n" +
		"mode \"x\": not one of the allowed values"
	if err == nil || err.Error() != want {
		t.Fatalf("Err() = %q, want %q", err, want)
	}
	if !errors.Is(err, ErrOutOfRange) || !errors.Is(err, ErrInvalidChoice) {
		t.Fatalf("Err() = %v, want it to wrap ErrOutOfRange and ErrInvalidChoice", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "low" || fe.Value != float64(0) {
		t.Fatalf("first FieldError = %+v, want field low, value 0", fe)
	}
}
