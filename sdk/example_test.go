package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log"
	"strconv"
	"time"

	"github.com/vigil-tsdb/vigil/sdk"
)

// Write one sample and learn what the server did with it.
func ExampleClient_Write() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	res, err := c.Write(ctx, []sdk.Series{{
		Labels:  sdk.Labels("__name__", "example_jobs_done_total", "job", "batch"),
		Samples: []sdk.Sample{{T: time.Now().UnixMilli(), V: 42}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", res.Stored, "rejected:", res.Rejected)
	// Output: stored: 1 rejected: 0
}

// The server refuses samples one by one (here, one too old to accept) and
// stores the rest; a malformed request is refused as a whole, with an
// error classified by ErrInvalid.
func ExampleClient_Write_rejections() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	now := time.Now()
	res, err := c.Write(ctx, []sdk.Series{
		{Labels: sdk.Labels("__name__", "example_temperature"), Samples: []sdk.Sample{{T: now.UnixMilli(), V: 21.5}}},
		{Labels: sdk.Labels("__name__", "example_temperature", "room", "attic"), Samples: []sdk.Sample{{T: now.AddDate(0, -2, 0).UnixMilli(), V: 3}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", res.Stored, "rejected:", res.RejectedByReason)

	_, err = c.Write(ctx, []sdk.Series{{Samples: []sdk.Sample{{T: now.UnixMilli(), V: 1}}}})
	fmt.Println("invalid:", errors.Is(err, sdk.ErrInvalid), "retry later:", errors.Is(err, sdk.ErrUnavailable))
	// Output:
	// stored: 1 rejected: map[too_old:1]
	// invalid: true retry later: false
}

// Stream many batches over one call: the answer sums them.
func ExampleClient_WriteStream() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	start := time.Now().Add(-time.Hour).UnixMilli()
	// Ten batches of 100 series × 6 samples. On a retryable failure the
	// stream is sent again from the start, so the sequence must yield the
	// same batches each time (the server drops what it already has).
	var batches iter.Seq[[]sdk.Series] = func(yield func([]sdk.Series) bool) {
		for b := range 10 {
			batch := make([]sdk.Series, 100)
			for s := range batch {
				batch[s].Labels = sdk.Labels("__name__", "example_stream", "shard", strconv.Itoa(b*100+s))
				for i := range 6 {
					batch[s].Samples = append(batch[s].Samples, sdk.Sample{T: start + int64(i)*10_000, V: float64(i)})
				}
			}
			if !yield(batch) {
				return
			}
		}
	}
	res, err := c.WriteStream(context.Background(), batches)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", res.Stored)
	// Output: stored: 6000
}

// A Writer batches samples in the background with bounded memory; Close
// returns once every sample is stored or refused, or with the error.
func ExampleWriter() {
	c, err := sdk.New(vigilAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	w := c.NewWriter(sdk.WriterOptions{MaxBatchSamples: 500, FlushInterval: time.Second})
	now := time.Now().UnixMilli()
	for i := range 2000 {
		labels := sdk.Labels("__name__", "example_writer_queue_depth", "queue", strconv.Itoa(i%20))
		if err := w.Add(ctx, labels, now-int64(i/20)*1000, float64(i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		log.Fatal(err)
	}
	st := w.Stats()
	fmt.Println("added:", st.Added, "stored:", st.Stored, "failed:", st.Failed)
	// Output: added: 2000 stored: 2000 failed: 0
}
