package compactor

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/storage"
)

// TestWindowsSources: Windows gives the same windows whatever source a day
// comes from — the tier, the 1 m tier combined (1 h disabled when it ran),
// or raw on the fly (not compacted) — and they equal Downsample of the
// samples written.
func TestWindowsSources(t *testing.T) {
	f := crashFixture
	all := genAll(f)
	db := openDB(t, f.copy(t))
	defer db.Close()
	ctx := context.Background()
	m := labels.MustNewMatcher(labels.MatchRegexp, "__name__", "fixture_.*")
	read := func(tier uint8) map[string][]downsample.Window {
		t.Helper()
		set, err := Windows(ctx, db, tier, dayStart(f.from)+1, dayStart(f.to), m)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]downsample.Window{}
		for i, s := range set {
			if i > 0 && labels.Compare(set[i-1].Labels, s.Labels) >= 0 {
				t.Fatalf("series not sorted: %s after %s", s.Labels, set[i-1].Labels)
			}
			if s.Labels.Get("__name__") != "fixture_anchor" {
				ws, err := s.AllWindows()
				if err != nil {
					t.Fatal(err)
				}
				out[s.Labels.String()] = ws
			}
		}
		return out
	}
	want := func(tier uint8) map[string][]downsample.Window {
		out := map[string][]downsample.Window{}
		for d := f.from; d < f.to; d++ {
			for k, ws := range expectDay(all, tier, d) {
				out[k] = append(out[k], ws...)
			}
		}
		return out
	}
	// Nothing compacted: every day from raw.
	compareDays(t, "1m from raw", read(storage.TierMinute), want(storage.TierMinute))
	compareDays(t, "1h from raw", read(storage.TierHour), want(storage.TierHour))
	// 1 m compacted, 1 h disabled: 1 h combined from 1 m.
	cfg := longRetention()
	cfg.RetentionHour = 0
	st := runOnce(t, newCompactor(t, cfg, db), f.compactedAt())
	if len(st.Compacted[storage.TierMinute]) == 0 || len(st.Compacted[storage.TierHour]) != 0 {
		t.Fatalf("compacted %v", st.Compacted)
	}
	compareDays(t, "1m from the tier", read(storage.TierMinute), want(storage.TierMinute))
	compareDays(t, "1h from 1m", read(storage.TierHour), want(storage.TierHour))
	// Both compacted.
	runOnce(t, newCompactor(t, longRetention(), db), f.compactedAt())
	compareDays(t, "1h from the tier", read(storage.TierHour), want(storage.TierHour))
	if _, err := Windows(ctx, db, storage.TierRaw, 0, 1, m); err == nil {
		t.Fatal("Windows of the raw tier: no error")
	}
}
