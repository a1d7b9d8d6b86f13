// Package sdk is the Go client of Vigil's public gRPC API, vigil.v1
// (docs/sdk.md).
//
// A Client writes samples through any node that runs a distributor:
//
//	c, err := sdk.New("localhost:9095")
//	if err != nil { ... }
//	defer c.Close()
//	res, err := c.Write(ctx, []sdk.Series{{
//		Labels:  sdk.Labels("__name__", "jobs_done_total", "job", "batch"),
//		Samples: []sdk.Sample{{T: time.Now().UnixMilli(), V: 42}},
//	}})
//
// Writes are idempotent on the server (a sample sent again is dropped as
// a duplicate), so the client retries any write whose outcome it does not
// know: on Unavailable, ResourceExhausted and a timed-out attempt, with
// exponential backoff, within the caller's context. Every error it
// returns is an *Error, classified by ErrInvalid and ErrUnavailable.
//
// A Writer batches samples in the background with bounded memory:
//
//	w := c.NewWriter(sdk.WriterOptions{})
//	err := w.Add(ctx, sdk.Labels("__name__", "queue_depth"), time.Now().UnixMilli(), 3)
//	...
//	err = w.Close(ctx) // every sample stored or refused, or the error
//
// Query, QueryRange, Series, LabelNames and LabelValues read through any
// node that runs a querier, with the HTTP API's checks, limits and error
// texts; a query's Value is a Vector, Matrix, Scalar or String:
//
//	res, err := c.Query(ctx, `sum(rate(jobs_done_total[5m]))`, time.Now())
//	if v, ok := res.Value.(sdk.Vector); ok { ... }
//
// RegisterTarget puts a scrape target into the target registry under a
// lease that the returned Registration keeps alive until Close:
//
//	reg, err := c.RegisterTarget(ctx, sdk.Target{Job: "batch", Address: "10.0.0.7:9100"}, 15*time.Second)
//	...
//	defer reg.Close(context.Background()) // the target disappears at once
//	<-reg.Done()                          // or: the lease was lost, see reg.Err()
//
// A node started with -sdk.listen-address, -sdk.tls-cert-file and
// -sdk.bearer-token-file wants TLS and a token:
//
//	c, err := sdk.New("vigil-1:9443,vigil-2:9443", sdk.WithTLS(nil), sdk.WithBearerToken(token))
//
// examples/selfmon is a small program that writes its own metrics
// through a Writer.
package sdk
