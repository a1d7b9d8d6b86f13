package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The head checkpoint holds every open chunk as it was at the last flush
// (docs/storage.md, "Head checkpoint"), so that chunks are written to
// Badger once, when they close, and the WAL can still be cut at each flush.
const (
	checkpointName    = "head.checkpoint"
	checkpointVersion = 1

	ckHeader byte = 0x10
	ckChunk  byte = 0x11
)

// checkpointWriter writes a new checkpoint next to the current one; commit
// replaces it atomically, abort removes the new file.
type checkpointWriter struct {
	dir     string
	f       *os.File
	w       *bufio.Writer
	payload []byte
	frame   []byte
	err     error
}

func newCheckpointWriter(dir string, walSegment int) (*checkpointWriter, error) {
	f, err := os.Create(filepath.Join(dir, checkpointName+".tmp"))
	if err != nil {
		return nil, fmt.Errorf("create head checkpoint: %w", err)
	}
	cw := &checkpointWriter{dir: dir, f: f, w: bufio.NewWriterSize(f, 1<<20)}
	p := append([]byte{ckHeader}, binary.LittleEndian.AppendUint32(nil, checkpointVersion)...)
	cw.write(binary.AppendUvarint(p, uint64(walSegment)))
	return cw, cw.err
}

func (cw *checkpointWriter) write(payload []byte) {
	if cw.err != nil {
		return
	}
	cw.frame = appendFrame(cw.frame[:0], payload)
	_, cw.err = cw.w.Write(cw.frame)
}

// addChunk records the open chunk of series ref.
func (cw *checkpointWriter) addChunk(ref uint64, mint, maxt int64, seq uint64, data []byte) {
	p := append(cw.payload[:0], ckChunk)
	p = binary.AppendUvarint(p, ref)
	p = binary.AppendVarint(p, mint)
	p = binary.AppendVarint(p, maxt)
	p = binary.AppendUvarint(p, seq)
	p = binary.AppendUvarint(p, uint64(len(data)))
	p = append(p, data...)
	cw.payload = p
	cw.write(p)
}

func (cw *checkpointWriter) commit() error {
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	if cw.err == nil {
		cw.err = cw.f.Sync()
	}
	if err := cw.f.Close(); cw.err == nil {
		cw.err = err
	}
	if cw.err != nil {
		os.Remove(cw.f.Name())
		return fmt.Errorf("write head checkpoint: %w", cw.err)
	}
	if err := os.Rename(cw.f.Name(), filepath.Join(cw.dir, checkpointName)); err != nil {
		return fmt.Errorf("replace head checkpoint: %w", err)
	}
	return syncDir(cw.dir)
}

func (cw *checkpointWriter) abort() {
	cw.f.Close()
	os.Remove(cw.f.Name())
}

// readCheckpoint calls fn for every chunk in the checkpoint and returns the
// WAL segment it covers up to (records in lower segments are in Badger or
// in the checkpoint). No checkpoint: segment 0, no chunks.
func readCheckpoint(dir string, fn func(ref uint64, mint, maxt int64, seq uint64, data []byte) error) (int, error) {
	path := filepath.Join(dir, checkpointName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	walSegment, first := -1, true
	_, err := replaySegment(path, func(p []byte) error {
		if first {
			first = false
			if len(p) < 6 || p[0] != ckHeader {
				return errors.New("missing header")
			}
			if v := binary.LittleEndian.Uint32(p[1:5]); v != checkpointVersion {
				return fmt.Errorf("version %d, this build reads %d", v, checkpointVersion)
			}
			seg, w := binary.Uvarint(p[5:])
			if w <= 0 {
				return errors.New("bad header")
			}
			walSegment = int(seg)
			return nil
		}
		if len(p) == 0 || p[0] != ckChunk {
			return fmt.Errorf("unknown record type %x", p[:min(1, len(p))])
		}
		b := p[1:]
		ref, w := binary.Uvarint(b)
		if w <= 0 {
			return errors.New("bad chunk ref")
		}
		b = b[w:]
		mint, w := binary.Varint(b)
		if w <= 0 {
			return errors.New("bad chunk mint")
		}
		b = b[w:]
		maxt, w := binary.Varint(b)
		if w <= 0 {
			return errors.New("bad chunk maxt")
		}
		b = b[w:]
		seq, w := binary.Uvarint(b)
		if w <= 0 {
			return errors.New("bad chunk seq")
		}
		b = b[w:]
		n, w := binary.Uvarint(b)
		if w <= 0 || n != uint64(len(b)-w) {
			return errors.New("bad chunk length")
		}
		return fn(ref, mint, maxt, seq, b[w:])
	})
	if err == nil && walSegment < 0 {
		err = errors.New("empty file")
	}
	if err != nil {
		return 0, fmt.Errorf("read head checkpoint %s (it is replaced whole, so damage is not a crash artefact): %w", path, err)
	}
	return walSegment, nil
}
