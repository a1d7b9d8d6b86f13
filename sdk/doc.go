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
// Not built yet (docs/sdk.md): the query and target services, TLS and
// bearer-token options.
package sdk
