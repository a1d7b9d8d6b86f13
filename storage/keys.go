package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Badger key layout; docs/storage.md is the reference and must change with
// this file. All integers are big-endian so that byte order is time order.
//
//	meta:     0x00 'm' name                                   → value
//	series:   0x01 labels                                     → id (8)
//	labels:   0x02 id(8)                                      → labels
//	postings: 0x03 tier(1) part(4) len name len value id(8)   → empty
//	chunks:   0x04 tier(1) part(4) id(8) mint(8) seq(8)       → chunk value
//	progress: 0x05 tier(1) part(4)                            → compactor's progress
//
// "part" is the time partition (day) a chunk's min time falls in (for the
// downsampled tiers, the day the compactor wrote it for, see tier.go), so
// that dropping a partition is one DropPrefix of postings and chunks, and a
// query over a short range only reads the partitions it covers.
const (
	prefixMeta     byte = 0x00
	prefixSeries   byte = 0x01
	prefixLabels   byte = 0x02
	prefixPostings byte = 0x03
	prefixChunks   byte = 0x04
	prefixProgress byte = 0x05
)

// Tier numbers: raw samples, and the compactor's 1 m and 1 h aggregates
// (docs/downsampling.md), which it writes with DB.BeginTierDay.
const (
	TierRaw    byte = 0
	TierMinute byte = 1
	TierHour   byte = 2
)

// FormatVersion is stored under meta "version"; Open refuses other versions.
const FormatVersion = 1

// PartitionDuration is the width of a time partition. It is part of the
// on-disk format: changing it needs a new FormatVersion.
const PartitionDuration int64 = 24 * 3600 * 1000

var (
	metaVersion   = []byte{prefixMeta, 'm', 'v', 'e', 'r', 's', 'i', 'o', 'n'}
	metaNextID    = []byte{prefixMeta, 'm', 'n', 'e', 'x', 't', 'i', 'd'}
	metaNextSeq   = []byte{prefixMeta, 'm', 'n', 'e', 'x', 't', 's', 'e', 'q'}
	metaHeadMaxT  = []byte{prefixMeta, 'm', 'h', 'e', 'a', 'd', 'm', 'a', 'x', 't'}
	metaColdDays  = []byte{prefixMeta, 'm', 'c', 'o', 'l', 'd', 'd', 'a', 'y', 's'}
	errShortValue = errors.New("value too short")
)

// partitionOf returns the partition a timestamp falls in.
func partitionOf(t int64) uint32 {
	d := t / PartitionDuration
	if t < 0 && t%PartitionDuration != 0 {
		d--
	}
	d = min(max(d, math.MinInt32), math.MaxInt32) // far outside any real data
	return uint32(int32(d)) ^ (1 << 31)           // sign flip keeps byte order = time order
}

// partitionStart returns the first timestamp of partition p.
func partitionStart(p uint32) int64 {
	return int64(int32(p^(1<<31))) * PartitionDuration
}

func putTime(b []byte, t int64) { binary.BigEndian.PutUint64(b, uint64(t)^(1<<63)) }
func getTime(b []byte) int64    { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func seriesKey(lbls []byte) []byte {
	k := make([]byte, 1+len(lbls))
	k[0] = prefixSeries
	copy(k[1:], lbls)
	return k
}

func labelsKey(id uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLabels
	binary.BigEndian.PutUint64(k[1:], id)
	return k
}

// partPrefix returns the prefix shared by all keys of kind prefix in one
// tier and partition.
func partPrefix(prefix, tier byte, part uint32) []byte {
	k := make([]byte, 6, 64)
	k[0], k[1] = prefix, tier
	binary.BigEndian.PutUint32(k[2:], part)
	return k
}

// postingNamePrefix is the prefix of every posting of label name in a partition.
func postingNamePrefix(tier byte, part uint32, name string) []byte {
	k := partPrefix(prefixPostings, tier, part)
	k = binary.AppendUvarint(k, uint64(len(name)))
	return append(k, name...)
}

// postingValuePrefix is the prefix of the postings of name=value.
func postingValuePrefix(tier byte, part uint32, name, value string) []byte {
	k := postingNamePrefix(tier, part, name)
	k = binary.AppendUvarint(k, uint64(len(value)))
	return append(k, value...)
}

func postingKey(tier byte, part uint32, name, value string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(postingValuePrefix(tier, part, name, value), id)
}

// parsePostingKey splits a posting key below its name prefix into value and id.
func parsePostingValue(rest []byte) (value string, id uint64, err error) {
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) != n+8 {
		return "", 0, fmt.Errorf("malformed posting key suffix %x", rest)
	}
	value = string(rest[w : w+int(n)])
	id = binary.BigEndian.Uint64(rest[w+int(n):])
	return value, id, nil
}

func chunkSeriesPrefix(tier byte, part uint32, id uint64) []byte {
	return binary.BigEndian.AppendUint64(partPrefix(prefixChunks, tier, part), id)
}

func chunkKey(tier byte, id uint64, mint int64, seq uint64) []byte {
	return tierChunkKey(tier, partitionOf(mint), id, mint, seq)
}

// tierChunkKey is the key of a chunk filed under partition part.
func tierChunkKey(tier byte, part uint32, id uint64, mint int64, seq uint64) []byte {
	k := chunkSeriesPrefix(tier, part, id)
	k = k[:len(k)+16]
	putTime(k[len(k)-16:], mint)
	binary.BigEndian.PutUint64(k[len(k)-8:], seq)
	return k
}

// progressKey is the key of the compactor's progress of a tier day.
func progressKey(tier byte, part uint32) []byte { return partPrefix(prefixProgress, tier, part) }

// parseChunkKey returns id, mint and seq of a chunk key.
func parseChunkKey(k []byte) (id uint64, mint int64, seq uint64, err error) {
	if len(k) != 6+8+8+8 || k[0] != prefixChunks {
		return 0, 0, 0, fmt.Errorf("malformed chunk key %x", k)
	}
	return binary.BigEndian.Uint64(k[6:]), getTime(k[14:]), binary.BigEndian.Uint64(k[22:]), nil
}

// Chunk values: maxt (8) encoding (1) data.
func chunkValue(maxt int64, enc byte, data []byte) []byte {
	v := make([]byte, 9+len(data))
	putTime(v, maxt)
	v[8] = enc
	copy(v[9:], data)
	return v
}

func parseChunkValue(v []byte) (maxt int64, enc byte, data []byte, err error) {
	if len(v) < 9 {
		return 0, 0, nil, errShortValue
	}
	return getTime(v), v[8], v[9:], nil
}

func readString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return "", nil, errors.New("bad length")
	}
	if n > uint64(len(b)-w) {
		return "", nil, fmt.Errorf("length %d beyond end of buffer (%d bytes left)", n, len(b)-w)
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func i64(t int64) []byte { b := make([]byte, 8); putTime(b, t); return b }

const minTime, maxTime = int64(math.MinInt64), int64(math.MaxInt64)
