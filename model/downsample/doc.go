// Package downsample holds the window aggregates of the downsampled tiers
// (docs/downsampling.md): what the compactor stores, what an ingester
// computes on the fly for days not compacted yet, and what the querier turns
// back into samples for PromQL.
//
//   - Window, the nine aggregate columns of one series over one window of
//     width W (left-open, right-closed, stamped with its end);
//   - Downsample (raw samples → windows) and Combine (fine windows → coarse
//     windows, e.g. 1 m → 1 h), which agree with each other and with
//     PromQL's *_over_time functions at aligned times;
//   - ColumnSamples and CounterView, the samples PromQL is given when a query
//     is rewritten to read a tier;
//   - AppendChunk and DecodeChunk, the aggregate chunk (encoding 2) stored
//     under the tier keys of docs/storage.md and sent in Select responses.
//
// Everything here is a pure function of its arguments and safe for
// concurrent use.
package downsample
