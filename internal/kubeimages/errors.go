package kubeimages

import (
	"errors"
	"strconv"
)

// ErrInvalid is wrapped by every error this package returns for bad input.
var ErrInvalid = errors.New("invalid argument")

// FieldError says which field is wrong, what its value was, why, and what to write instead.
// It wraps [ErrInvalid].
type FieldError struct {
	// Field is the name of the setting, e.g. "mirrors[1]". Empty when the value stands alone
	// (ParseReference); callers then name the field themselves.
	Field string
	// Value is the rejected input.
	Value string
	// Reason says what is wrong with Value, e.g. "is not an http(s) URL".
	Reason string
	// Hint says what to do instead; may be empty.
	Hint string
}

// Error renders `field: "value" reason: hint`.
func (e *FieldError) Error() string {
	s := strconv.Quote(e.Value) + " " + e.Reason
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, value, reason, hint string) *FieldError {
	return &FieldError{Field: field, Value: value, Reason: reason, Hint: hint}
}
