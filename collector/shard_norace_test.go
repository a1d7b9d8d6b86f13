//go:build !race

package collector

const shardRaceEnabled = false
