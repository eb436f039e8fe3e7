package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Sentinel errors of values that cannot be decoded into their key's type.
var (
	ErrWrongType      = errors.New("wrong type")
	ErrDurationUnit   = errors.New("a duration needs a unit")
	ErrDurationFormat = errors.New("not a duration")
)

var durationType = reflect.TypeFor[time.Duration]()

// decodeHook is the decode hook of the configuration: strict durations for every
// time.Duration key, and comma-separated strings (environment) into lists.
var decodeHook = viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(durationHook, listHook))

// valueError is a decode hook's error together with the value it refused, so that
// the message can show what was given.
type valueError struct {
	value any
	err   error
}

func (e *valueError) Error() string { return e.err.Error() }
func (e *valueError) Unwrap() error { return e.err }

// durationHook decodes every time.Duration key, wherever it comes from (file,
// environment, flag): a Go duration with its unit ("5s", "250ms", "1h30m") or 0. A bare
// number other than 0 is refused; mapstructure would take it as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	bare := func(num string) error {
		return &valueError{data, fmt.Errorf("%w: write e.g. %ss, %sms or %sm", ErrDurationUnit, num, num, num)}
	}
	rv := reflect.ValueOf(data)
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(rv.String())
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			if f == 0 {
				return time.Duration(0), nil
			}
			return nil, bare(s)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, &valueError{data, fmt.Errorf("%w: want a number with a unit (ns, us, ms, s, m, h), e.g. 5s or 1m30s", ErrDurationFormat)}
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if rv.IsZero() {
			return time.Duration(0), nil
		}
		return nil, bare(fmt.Sprint(data))
	}
	return data, nil
}

// listHook splits a comma-separated string (an environment variable) into a list, as
// viper's default hook does.
func listHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	s := reflect.ValueOf(data).String()
	if s == "" {
		return []string{}, nil
	}
	return strings.Split(s, ","), nil
}

// decodeErrors turns mapstructure's error (a paragraph headed "decoding failed due to
// the following error(s)") into one *ConfigError per key: the key, the value given and
// what is expected. It returns nil when err holds no per-key error.
func decodeErrors(err error) error {
	var errs []error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *mapstructure.DecodeError:
			inner := e.Unwrap()
			var nested *mapstructure.DecodeError
			if errors.As(inner, &nested) {
				walk(inner)
				return
			}
			errs = append(errs, keyError(e.Name(), inner))
			return
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return errors.Join(errs...)
}

// keyError says what went wrong with the value of key.
func keyError(key string, err error) *ConfigError {
	var (
		ve *valueError
		pe *mapstructure.ParseError
		ue *mapstructure.UnconvertibleTypeError
	)
	switch {
	case errors.As(err, &ve):
		return &ConfigError{Field: key, Value: ve.value, Err: ve.err}
	case errors.As(err, &pe):
		return &ConfigError{Field: key, Value: pe.Value, Err: fmt.Errorf("%w: want %s", ErrWrongType, expected(pe.Expected.Type()))}
	case errors.As(err, &ue):
		return &ConfigError{Field: key, Value: ue.Value, Err: fmt.Errorf("%w: want %s", ErrWrongType, expected(ue.Expected.Type()))}
	}
	return &ConfigError{Field: key, Value: "", Err: err}
}

// expected describes the values a key of type t takes.
func expected(t reflect.Type) string {
	if t == durationType {
		return "a duration with a unit, e.g. 5s"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number, e.g. 1000"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more, e.g. 1000"
	case reflect.Float32, reflect.Float64:
		return "a number, e.g. 2.5"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a section of keys"
	}
	return t.String()
}
