package sdk

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestErrorClasses(t *testing.T) {
	overload, err := status.New(codes.ResourceExhausted, "overloaded").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name               string
		err                error
		retryable, invalid bool
		delay              time.Duration
		code               codes.Code
	}{
		{"unavailable", status.Error(codes.Unavailable, "no quorum"), true, false, 0, codes.Unavailable},
		{"attempt timed out", status.Error(codes.DeadlineExceeded, "slow"), true, false, 0, codes.DeadlineExceeded},
		{"too large", status.Error(codes.ResourceExhausted, "request too large"), false, false, 0, codes.ResourceExhausted},
		{"overloaded, with RetryInfo", overload.Err(), true, false, 1500 * time.Millisecond, codes.ResourceExhausted},
		{"invalid", status.Error(codes.InvalidArgument, "series[0]: no labels"), false, true, 0, codes.InvalidArgument},
		{"not a status", errors.New("boom"), false, false, 0, codes.Unknown},
	} {
		e, delay := newError("write", tc.err, 1)
		if e.Code != tc.code || e.Retryable != tc.retryable || delay != tc.delay ||
			errors.Is(e, ErrUnavailable) != tc.retryable || errors.Is(e, ErrInvalid) != tc.invalid {
			t.Errorf("%s: %+v, delay %s", tc.name, e, delay)
		}
	}
}

// TestRetry: retryable failures are retried up to the limit, others end
// the call at once, and the error counts the attempts.
func TestRetry(t *testing.T) {
	c := &Client{opts: options{maxRetries: 3, backoffBase: time.Millisecond, backoffMax: 2 * time.Millisecond}}
	calls := 0
	failing := func(code codes.Code, okAfter int) func(context.Context) error {
		calls = 0
		return func(context.Context) error {
			calls++
			if okAfter > 0 && calls > okAfter {
				return nil
			}
			return status.Error(code, "x")
		}
	}
	if err := c.retry(context.Background(), "write", failing(codes.Unavailable, 2)); err != nil || calls != 3 {
		t.Errorf("recovering: %v after %d calls", err, calls)
	}
	err := c.retry(context.Background(), "write", failing(codes.Unavailable, 0))
	var e *Error
	if !errors.As(err, &e) || e.Attempts != 4 || calls != 4 {
		t.Errorf("always unavailable: %v after %d calls", err, calls)
	}
	if err := c.retry(context.Background(), "write", failing(codes.InvalidArgument, 0)); !errors.Is(err, ErrInvalid) || calls != 1 {
		t.Errorf("invalid: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.retry(ctx, "write", failing(codes.Unavailable, 0)); err == nil || calls != 1 {
		t.Errorf("cancelled context: %v after %d calls", err, calls)
	}
}

func TestBackoffBound(t *testing.T) {
	for _, tc := range []struct {
		first, longest time.Duration
		attempt        int
		want           time.Duration
	}{
		{100 * time.Millisecond, 5 * time.Second, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, 5 * time.Second, 3, 800 * time.Millisecond},
		{100 * time.Millisecond, 5 * time.Second, 6, 5 * time.Second},
		{100 * time.Millisecond, 5 * time.Second, 1000, 5 * time.Second},
		{time.Hour, 24 * time.Hour, 80, 24 * time.Hour}, // no overflow
	} {
		c := &Client{opts: options{backoffBase: tc.first, backoffMax: tc.longest}}
		if got := c.backoffBound(tc.attempt); got != tc.want {
			t.Errorf("first %s, longest %s, attempt %d: %s, want %s", tc.first, tc.longest, tc.attempt, got, tc.want)
		}
	}
}
