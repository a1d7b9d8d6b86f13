package distributor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

// WriteServer serves the public vigil.v1.Write service (docs/sdk.md) over
// a Distributor: the same validation, limits and quorum as the HTTP write
// endpoints.
type WriteServer struct {
	vigilv1.UnimplementedWriteServer
	d         *Distributor
	streamMax time.Duration
	draining  chan struct{} // closed by Drain
	drainOnce sync.Once
}

// NewWriteServer returns the vigil.v1.Write service of d. A WriteStream
// open longer than streamMax ends with ResourceExhausted.
func NewWriteServer(d *Distributor, streamMax time.Duration) *WriteServer {
	return &WriteServer{d: d, streamMax: streamMax, draining: make(chan struct{})}
}

// Drain ends the open WriteStreams with Unavailable (the client sends the
// stream again, to another node): at shutdown, so that a client's idle
// stream does not hold the gRPC server's graceful stop.
func (s *WriteServer) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// Write implements vigilv1.WriteServer.
func (s *WriteServer) Write(ctx context.Context, req *vigilv1.WriteRequest) (*vigilv1.WriteResponse, error) {
	res, err := s.push(ctx, req)
	if err != nil {
		return nil, writeStatus(err)
	}
	return writeResponse(res), nil
}

// WriteStream implements vigilv1.WriteServer: each message is pushed as it
// arrives; the answer sums them. A stream open longer than streamMax,
// idle or not, ends with ResourceExhausted (without RetryInfo: sending the
// same stream again would end the same way), so that the client never
// takes a stream cut short for a complete one.
func (s *WriteServer) WriteStream(stream vigilv1.Write_WriteStreamServer) error {
	type received struct {
		req *vigilv1.WriteRequest
		err error
	}
	ctx := stream.Context()
	msgs := make(chan received)
	go func() { // the only caller of Recv; it ends with the stream
		for {
			req, err := stream.Recv()
			select {
			case msgs <- received{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	limit := time.NewTimer(s.streamMax)
	defer limit.Stop()
	var sum model.PushResult
	for i := 0; ; i++ {
		var m received
		select {
		case m = <-msgs:
		case <-limit.C:
			return status.Errorf(codes.ResourceExhausted, "stream open longer than %s (-sdk.stream-max-duration) after %d messages: write the rest in a new stream; %d samples of those messages were stored", s.streamMax, i, sum.Stored)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.draining:
			return status.Errorf(codes.Unavailable, "message %d: the node is shutting down: send the stream again", i)
		}
		if errors.Is(m.err, io.EOF) {
			return stream.SendAndClose(writeResponse(sum))
		}
		if m.err != nil {
			return m.err
		}
		res, err := s.push(ctx, m.req)
		if err != nil {
			return writeStatus(fmt.Errorf("message %d: %w", i, err))
		}
		sum.Merge(res)
	}
}

func (s *WriteServer) push(ctx context.Context, req *vigilv1.WriteRequest) (model.PushResult, error) {
	batch, err := fromWriteRequest(req)
	if err != nil {
		return model.PushResult{}, err
	}
	return s.d.Push(ctx, batch)
}

// fromWriteRequest converts a request, refusing what no limit could
// accept: a series without labels or samples, or with a label name twice.
// Everything else (label syntax, sample age, limits) is the Distributor's.
func fromWriteRequest(req *vigilv1.WriteRequest) ([]model.Series, error) {
	n := 0
	for _, s := range req.Series {
		n += len(s.Samples)
	}
	smps := make([]model.Sample, n)
	out := make([]model.Series, len(req.Series))
	b := labels.NewScratchBuilder(0)
	for i, s := range req.Series {
		if len(s.Labels) == 0 {
			return nil, model.BadData("write request", fmt.Errorf("series[%d]: no labels", i))
		}
		if len(s.Samples) == 0 {
			return nil, model.BadData("write request", fmt.Errorf("series[%d]: no samples", i))
		}
		b.Reset()
		for _, l := range s.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		lset := b.Labels()
		if name, dup := lset.HasDuplicateLabelNames(); dup {
			return nil, model.BadData("write request", fmt.Errorf("series[%d]: label name %q appears twice", i, name))
		}
		mine := smps[:len(s.Samples):len(s.Samples)]
		smps = smps[len(s.Samples):]
		for j, smp := range s.Samples {
			mine[j] = model.Sample{T: smp.TimestampMs, V: smp.Value}
		}
		out[i] = model.Series{Labels: lset, Samples: mine}
	}
	return out, nil
}

// overloadRetryDelay is the RetryInfo delay of an overloaded write.
const overloadRetryDelay = time.Second

// writeStatus is the gRPC status of a failed write. An overload carries a
// RetryInfo detail, the client's sign that ResourceExhausted is worth
// retrying (a request too large is not).
func writeStatus(err error) error {
	st := status.Convert(ingesterpb.ToStatus(err))
	if errors.Is(err, model.ErrOverloaded) {
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(overloadRetryDelay)}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

func writeResponse(r model.PushResult) *vigilv1.WriteResponse {
	resp := &vigilv1.WriteResponse{Stored: int64(r.Stored), Duplicates: int64(r.Duplicates), Rejected: int64(r.RejectedSamples)}
	if len(r.ByReason) > 0 {
		resp.RejectedByReason = make(map[string]int64, len(r.ByReason))
		for k, v := range r.ByReason {
			resp.RejectedByReason[string(k)] = int64(v)
		}
	}
	for _, rj := range r.Rejections {
		resp.Rejections = append(resp.Rejections, &vigilv1.Rejection{Reason: string(rj.Reason), Series: rj.Series, TimestampMs: rj.T, Message: rj.Message})
	}
	return resp
}
