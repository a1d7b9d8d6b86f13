package model

import (
	"errors"
	"fmt"
)

// Error classes. Boundaries (HTTP, gRPC) map an error to a status code by
// testing for these with errors.Is, in one function each.
var (
	// ErrBadData: the request itself is malformed (undecodable body, bad
	// parameter). Never worth retrying. HTTP 400, gRPC InvalidArgument.
	ErrBadData = errors.New("bad data")
	// ErrTooLarge: body or batch over a configured size. HTTP 413,
	// gRPC ResourceExhausted.
	ErrTooLarge = errors.New("request too large")
	// ErrUnavailable: storage cannot accept writes right now (WAL failure,
	// shutting down). Retrying later may succeed. HTTP 503, gRPC Unavailable.
	ErrUnavailable = errors.New("unavailable")
	// ErrOverloaded: too many requests in flight. HTTP 429, gRPC
	// ResourceExhausted.
	ErrOverloaded = errors.New("overloaded")
)

// BadDataError wraps a decoding or validation problem with its cause.
type BadDataError struct {
	What string // what was being decoded or checked, e.g. "snappy body"
	Err  error
}

func (e *BadDataError) Error() string { return fmt.Sprintf("%s: %v", e.What, e.Err) }

// Unwrap lets errors.Is see both the class and the cause.
func (e *BadDataError) Unwrap() []error { return []error{ErrBadData, e.Err} }

// BadData returns a *BadDataError.
func BadData(what string, err error) error { return &BadDataError{What: what, Err: err} }
