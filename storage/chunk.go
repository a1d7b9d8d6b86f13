package storage

import (
	"fmt"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// chunkFromBytes wraps XOR chunk bytes (not copied) as a chunk.
func chunkFromBytes(data []byte) (*chunkenc.XORChunk, error) {
	c, err := chunkenc.FromData(chunkenc.EncXOR, data)
	if err != nil {
		return nil, fmt.Errorf("decode xor chunk: %w", err)
	}
	return c.(*chunkenc.XORChunk), nil
}
