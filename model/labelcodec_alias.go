//go:build !slicelabels && !dedupelabels

package model

import "unsafe"

// scratchString returns b as a string without copying. Safe only because
// the default (stringlabels) ScratchBuilder.Labels copies every name and
// value into one new buffer; other label implementations use the copying
// version in labelcodec_copy.go.
func scratchString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
