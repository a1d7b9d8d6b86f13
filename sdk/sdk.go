package sdk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

// Client is a connection to Vigil. It is safe for concurrent use.
type Client struct {
	conn      *grpc.ClientConn
	write     vigilv1.WriteClient
	opts      options
	closing   chan struct{} // closed by Close: Registrations stop
	closeOnce sync.Once
}

// Option configures New.
type Option func(*options)

type options struct {
	maxRetries   int
	backoffBase  time.Duration
	backoffMax   time.Duration
	dialOptions  []grpc.DialOption
	maxSendBytes int
	maxRecvBytes int
	tls          *tls.Config // nil: plaintext
	token        string      // bearer token; empty: none
}

// WithMaxRetries sets how many times a retryable failure is retried
// (default 5; 0 turns retries off).
func WithMaxRetries(n int) Option { return func(o *options) { o.maxRetries = max(n, 0) } }

// WithBackoff sets the first and the longest wait between retries
// (defaults 100 ms and 5 s); each wait is drawn at random up to the
// exponential bound (full jitter).
func WithBackoff(first, longest time.Duration) Option {
	return func(o *options) { o.backoffBase, o.backoffMax = max(first, time.Millisecond), max(longest, first) }
}

// WithDialOptions adds gRPC dial options (applied after the others, so
// they win).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// New returns a client of the Vigil node at addr ("host:port"), of the
// nodes of a comma-separated list ("vigil-1:9095,vigil-2:9095"), or of a
// gRPC target such as a DNS name listing nodes ("dns:///vigil:9095").
// Calls go round robin over the nodes, and a retry goes to another node
// when one is down. It does not connect until the first call.
func New(addr string, opts ...Option) (*Client, error) {
	o := options{maxRetries: 5, backoffBase: 100 * time.Millisecond, backoffMax: 5 * time.Second, maxSendBytes: 64 << 20, maxRecvBytes: 64 << 20}
	for _, opt := range opts {
		opt(&o)
	}
	target, dial, err := dialTarget(addr)
	if err != nil {
		return nil, fmt.Errorf("vigil sdk: client of %q: %w", addr, err)
	}
	dial = append(append(dial, o.transportOptions()...),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(o.maxSendBytes), grpc.MaxCallRecvMsgSize(o.maxRecvBytes)))
	dial = append(dial, o.dialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("vigil sdk: client of %q: %w", addr, err)
	}
	return &Client{conn: conn, write: vigilv1.NewWriteClient(conn), opts: o, closing: make(chan struct{})}, nil
}

// Close closes the connection. Registrations made through c stop keeping
// their leases alive (Err returns ErrClientClosed) without unregistering:
// their targets expire after their ttl. Close them first to remove them
// at once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	return c.conn.Close()
}

// Label is a label of a series.
type Label struct{ Name, Value string }

// Labels returns the labels of alternating names and values; it panics on
// an odd count, as a programming error.
func Labels(nameValues ...string) []Label {
	if len(nameValues)%2 != 0 {
		panic("sdk.Labels: odd number of strings")
	}
	out := make([]Label, 0, len(nameValues)/2)
	for i := 0; i < len(nameValues); i += 2 {
		out = append(out, Label{Name: nameValues[i], Value: nameValues[i+1]})
	}
	return out
}

// Sample is a value at a time in Unix milliseconds.
type Sample struct {
	T int64
	V float64
}

// Series is a label set with samples, in any order.
type Series struct {
	Labels  []Label
	Samples []Sample
}

// WriteResult says what the server did with a write.
type WriteResult struct {
	Stored     int64 // samples stored
	Duplicates int64 // samples it already held, dropped
	Rejected   int64 // samples refused; Rejections shows why
	// RejectedByReason counts every refused sample by reason ("too_old",
	// "conflict", ...).
	RejectedByReason map[string]int64
	// Rejections holds up to 10 examples, first ones first.
	Rejections []Rejection
}

// Rejection is one refused sample or series.
type Rejection struct {
	Reason  string
	Series  string // in Prometheus text form
	T       int64  // the sample's time; 0 for series-level reasons
	Message string
}

// Write stores series. Samples the server refuses one by one (too old, a
// conflicting value, bad labels) are counted in the result, not returned
// as an error; the error says the write as a whole failed.
func (c *Client) Write(ctx context.Context, series []Series) (WriteResult, error) {
	req := toWriteRequest(series)
	var resp *vigilv1.WriteResponse
	err := c.retry(ctx, "write", func(ctx context.Context) (err error) {
		resp, err = c.write.Write(ctx, req)
		return err
	})
	if err != nil {
		return WriteResult{}, err
	}
	return fromWriteResponse(resp), nil
}

// WriteStream stores the batches of batches over one stream and returns
// the sums. If the stream fails in a retryable way, it is opened again
// and batches is ranged over again from the start (the server drops what
// it already stored as duplicates, counted in Duplicates): batches must
// yield the same batches each time.
func (c *Client) WriteStream(ctx context.Context, batches iter.Seq[[]Series]) (WriteResult, error) {
	var resp *vigilv1.WriteResponse
	err := c.retry(ctx, "write stream", func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.write.WriteStream(ctx)
		if err != nil {
			return err
		}
		for b := range batches {
			if err := stream.Send(toWriteRequest(b)); err != nil {
				break // the stream ended: CloseAndRecv returns its status
			}
		}
		resp, err = stream.CloseAndRecv()
		return err
	})
	if err != nil {
		return WriteResult{}, err
	}
	return fromWriteResponse(resp), nil
}

// retry runs call until it succeeds, fails in a way not worth retrying,
// runs out of retries or ctx ends; the error is an *Error.
func (c *Client) retry(ctx context.Context, what string, call func(context.Context) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		if err = call(ctx); err == nil {
			return nil
		}
		var fe finalError
		final := errors.As(err, &fe)
		if final {
			err = fe.err
		}
		e, delay := newError(what, err, attempt+1)
		if final {
			e.Retryable = false
		}
		if !e.Retryable || attempt >= c.opts.maxRetries || ctx.Err() != nil {
			if ctx.Err() != nil && e.Code != codes.Canceled && e.Code != codes.DeadlineExceeded {
				e.Message += " (then " + ctx.Err().Error() + ")"
			}
			return e
		}
		wait := max(time.Duration(rand.Int64N(int64(c.backoffBound(attempt))+1)), delay)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			e.Message += " (then " + ctx.Err().Error() + ")"
			return e
		}
	}
}

// finalError wraps a call's error that retry must not retry, whatever
// its code.
type finalError struct{ err error }

func (f finalError) Error() string { return f.err.Error() }

// queryTimeoutIsFinal makes the server's own query timeout final: the
// same query would run out of time again.
func queryTimeoutIsFinal(err error) error {
	if status.Code(err) == codes.DeadlineExceeded {
		return finalError{err}
	}
	return err
}

// backoffBound is the longest wait after the given failed attempt
// (counted from 0): the first backoff doubled per attempt, capped.
func (c *Client) backoffBound(attempt int) time.Duration {
	w := c.opts.backoffBase
	for range attempt {
		if w >= c.opts.backoffMax/2 {
			return c.opts.backoffMax
		}
		w *= 2
	}
	return min(w, c.opts.backoffMax)
}

// Error is a failed call: the gRPC code and the server's message.
type Error struct {
	Op        string     // "write", "write stream", "query", "query range", "series", "label names", "label values", ...
	Code      codes.Code // gRPC status code
	Message   string     // the server's text
	Attempts  int        // calls made
	Retryable bool       // worth trying again later
}

func (e *Error) Error() string {
	s := fmt.Sprintf("vigil %s: %s: %s", e.Op, e.Code, e.Message)
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return s
}

// Is makes errors.Is(err, ErrInvalid), errors.Is(err, ErrUnavailable) and
// errors.Is(err, ErrDenied) classify an *Error.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Code == codes.InvalidArgument
	case ErrUnavailable:
		return e.Retryable
	case ErrDenied:
		return e.Code == codes.Unauthenticated || e.Code == codes.PermissionDenied
	}
	return false
}

var (
	// ErrInvalid classifies requests the server refused as malformed:
	// sending them again cannot succeed.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable classifies failures where nothing was acknowledged
	// and a later try may succeed (no write quorum, overload, timeout).
	ErrUnavailable = errors.New("unavailable")
	// ErrClientClosed is a Registration's Err after its Client was
	// closed.
	ErrClientClosed = errors.New("vigil sdk: client closed")
	// ErrDenied classifies calls the server refused for their
	// credentials: a missing or unknown bearer token (WithBearerToken).
	ErrDenied = errors.New("permission denied")
)

// newError classifies a failed call, with the server's RetryInfo delay
// if it sent one. ResourceExhausted is retryable only with RetryInfo: the
// server sends it for an overload, not for a request too large.
func newError(op string, err error, attempts int) (*Error, time.Duration) {
	st, _ := status.FromError(err) // a non-status error becomes Unknown
	e := &Error{Op: op, Code: st.Code(), Message: st.Message(), Attempts: attempts}
	var delay time.Duration
	hinted := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hinted, delay = true, ri.GetRetryDelay().AsDuration()
		}
	}
	switch e.Code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		e.Retryable = true
	case codes.ResourceExhausted:
		e.Retryable = hinted
	}
	return e, delay
}

func toWriteRequest(series []Series) *vigilv1.WriteRequest {
	req := &vigilv1.WriteRequest{Series: make([]*vigilv1.Series, len(series))}
	for i, s := range series {
		ps := &vigilv1.Series{Labels: make([]*vigilv1.Label, len(s.Labels)), Samples: make([]*vigilv1.Sample, len(s.Samples))}
		for j, l := range s.Labels {
			ps.Labels[j] = &vigilv1.Label{Name: l.Name, Value: l.Value}
		}
		for j, smp := range s.Samples {
			ps.Samples[j] = &vigilv1.Sample{TimestampMs: smp.T, Value: smp.V}
		}
		req.Series[i] = ps
	}
	return req
}

func fromWriteResponse(r *vigilv1.WriteResponse) WriteResult {
	out := WriteResult{Stored: r.Stored, Duplicates: r.Duplicates, Rejected: r.Rejected, RejectedByReason: r.RejectedByReason}
	for _, rj := range r.Rejections {
		out.Rejections = append(out.Rejections, Rejection{Reason: rj.Reason, Series: rj.Series, T: rj.TimestampMs, Message: rj.Message})
	}
	return out
}
