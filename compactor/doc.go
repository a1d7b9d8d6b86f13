// Package compactor downsamples raw samples into 1-minute and 1-hour
// aggregates and enforces retention over one ingester's local storage. The
// design is docs/downsampling.md; change it with the code.
//
// This part is the storage-independent core:
//
//   - Window, the nine aggregate columns of one series over one window of
//     width W (left-open, right-closed, stamped with its end);
//   - Downsample (raw samples → windows) and Combine (fine windows → coarse
//     windows, e.g. 1 m → 1 h), which agree with each other and with
//     PromQL's *_over_time functions at aligned times;
//   - ColumnSamples and CounterView, the samples PromQL is given when a query
//     is rewritten to read a tier;
//   - AppendChunk and DecodeChunk, the aggregate chunk (encoding 2) stored
//     under the tier keys of docs/storage.md.
//
// Everything here is a pure function of its arguments and safe for
// concurrent use.
package compactor
