//go:build slicelabels || dedupelabels

package model

// scratchString copies: these label implementations keep the strings given
// to ScratchBuilder.Add.
func scratchString(b []byte) string { return string(b) }
