//go:build race

package collector

// shardRaceEnabled is true when the race detector is on: property tests then
// run fewer random instances.
const shardRaceEnabled = true
