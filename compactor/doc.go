// Package compactor downsamples one ingester's raw samples into 1-minute
// and 1-hour aggregates (package model/downsample) and enforces retention
// per tier over its local storage. The design is docs/downsampling.md;
// change it with the code.
//
// A Compactor runs passes (Run on a ticker, RunOnce for a given clock): each
// compacts the due UTC days of the 1 m tier from raw and of the 1 h tier
// from 1 m, newest first, and then drops the days past each tier's
// retention, oldest first, never before the next tier holds them. Progress
// is one key per tier day, written last; a crash leaves a day either
// complete or invisible and redone.
package compactor
