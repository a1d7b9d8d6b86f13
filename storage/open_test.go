package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// TestOpenAfterEmptyMemtable: a crash between Badger's creation of a
// memtable file and its first write leaves the file empty, which fails
// badger.Open once (dgraph-io/badger#2207); Open retries, and the data
// written before is there.
func TestOpenAfterEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	db := openTest(t, cfg)
	s := model.Series{Labels: labels.FromStrings("__name__", "x"), Samples: []model.Sample{{T: 1000, V: 1}}}
	if res, err := db.Append(context.Background(), []model.Series{s}); err != nil || res.Stored != 1 {
		t.Fatalf("append: %v %+v", err, res)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "badger", "00099.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	defer db.Close()
	got, err := db.SeriesSamples(context.Background(), s.Labels, 0, 2000)
	if err != nil || len(got) != 1 || got[0] != s.Samples[0] {
		t.Fatalf("after reopening: %v %v, want %v", got, err, s.Samples)
	}
}
