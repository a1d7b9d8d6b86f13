//go:build race

package main

// raceEnabled: the race detector slows storage and compaction ~10×; big
// acceptance tests run smaller under it (and at full size in make test's
// run without it).
const raceEnabled = true
