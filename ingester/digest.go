package ingester

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	vstorage "github.com/vigil-tsdb/vigil/storage"
)

// seriesDigest is one local series as repair sees it.
type seriesDigest struct {
	hash    uint64        // xxhash64 of the encoded labels: the ring key's hash
	labels  labels.Labels // kept only when asked for
	samples uint64
	sum     uint64
}

// partDigest aggregates one ring partition.
type partDigest struct {
	series, samples, sum uint64
	list                 []seriesDigest // when per-series digests were asked for
}

func (p *partDigest) equal(o *ingesterpb.PartitionDigest) bool {
	return o != nil && p.series == o.Series && p.samples == o.Samples && p.sum == o.Sum
}

// seriesMix folds one series into its partition's order-independent sum.
func seriesMix(hash, samples, sum uint64) uint64 {
	return vstorage.Mix64(hash ^ vstorage.Mix64(sum+samples*0x9e3779b97f4a7c15))
}

// digestCache keeps the per-partition digests of cold windows (entirely
// older than storage.ColdAge), which only change through backfills,
// deletions and very late appends: storage.ColdChanges tells when. Repair
// reads each day of its lookback every round; without the cache every
// round would decode every sample of the lookback.
type digestCache struct {
	store Store
	now   func() time.Time

	mu      sync.Mutex // protects entries
	entries map[[3]int64]*cachedWindow
}

type cachedWindow struct {
	gen   uint64
	parts map[int]*partDigest
	used  time.Time
}

// maxCachedWindows bounds the cache: a lookback of days, a few windows each.
const maxCachedWindows = 64

// partitionDigests is digests without per-series detail, from the cache
// when the window is cold.
func (c *digestCache) partitionDigests(ctx context.Context, mint, maxt int64, count int, want func(int) bool) (map[int]*partDigest, error) {
	if maxt >= c.now().Add(-vstorage.ColdAge).UnixMilli() {
		return digests(ctx, c.store, mint, maxt, count, want, false, false)
	}
	key := [3]int64{mint, maxt, int64(count)}
	gen := c.store.ColdChanges() // before reading: a change during the scan invalidates it
	c.mu.Lock()
	e := c.entries[key]
	if e != nil && e.gen == gen {
		e.used = c.now()
	}
	c.mu.Unlock()
	if e == nil || e.gen != gen {
		parts, err := digests(ctx, c.store, mint, maxt, count, nil, false, false)
		if err != nil {
			return nil, err
		}
		e = &cachedWindow{gen: gen, parts: parts, used: c.now()}
		c.mu.Lock()
		if c.entries == nil {
			c.entries = map[[3]int64]*cachedWindow{}
		}
		c.entries[key] = e
		for len(c.entries) > maxCachedWindows {
			var oldest [3]int64
			first := true
			for k, v := range c.entries {
				if first || v.used.Before(c.entries[oldest].used) {
					oldest, first = k, false
				}
			}
			delete(c.entries, oldest)
		}
		c.mu.Unlock()
	}
	out := make(map[int]*partDigest, len(e.parts))
	for p, pd := range e.parts {
		if want == nil || want(p) {
			out[p] = pd // never modified after caching
		}
	}
	return out, nil
}

// digests summarises the store's data in [mint, maxt] per partition of
// count. want selects partitions (nil: all); perSeries keeps each series'
// digest, withLabels also its labels.
func digests(ctx context.Context, store Store, mint, maxt int64, count int, want func(p int) bool, perSeries, withLabels bool) (map[int]*partDigest, error) {
	out := map[int]*partDigest{}
	var key []byte
	err := store.SeriesDigests(ctx, mint, maxt, func(d vstorage.SeriesDigest) error {
		key = model.AppendLabels(key[:0], d.Labels)
		h := xxhash.Sum64(key)
		p := int(h % uint64(count))
		if want != nil && !want(p) {
			return nil
		}
		pd := out[p]
		if pd == nil {
			pd = &partDigest{}
			out[p] = pd
		}
		pd.series++
		pd.samples += uint64(d.Samples)
		pd.sum += seriesMix(h, uint64(d.Samples), d.Sum)
		if perSeries {
			sd := seriesDigest{hash: h, samples: uint64(d.Samples), sum: d.Sum}
			if withLabels {
				sd.labels = d.Labels.Copy()
			}
			pd.list = append(pd.list, sd)
		}
		return nil
	})
	return out, err
}

// Digests implements the Digests RPC.
func (i *Ingester) Digests(ctx context.Context, req *ingesterpb.DigestsRequest) (*ingesterpb.DigestsResponse, error) {
	defer i.observe("Digests", time.Now())
	if req.PartitionCount == 0 {
		return nil, ingesterpb.ToStatus(model.BadData("digests request", fmt.Errorf("partition_count must be set")))
	}
	if i.cfg.Partitions > 0 && int(req.PartitionCount) != i.cfg.Partitions {
		return nil, ingesterpb.ToStatus(model.BadData("digests request", fmt.Errorf("partition_count %d differs from this ingester's %d (-ring.partitions must agree on every node)", req.PartitionCount, i.cfg.Partitions)))
	}
	var want func(int) bool
	if len(req.Partitions) > 0 {
		set := make(map[int]bool, len(req.Partitions))
		for _, p := range req.Partitions {
			set[int(p)] = true
		}
		want = func(p int) bool { return set[p] }
	}
	mint, maxt := timeRange(req.StartMs, req.EndMs)
	var parts map[int]*partDigest
	var err error
	if req.PerSeries {
		parts, err = digests(ctx, i.store, mint, maxt, int(req.PartitionCount), want, true, false)
	} else {
		parts, err = i.digests.partitionDigests(ctx, mint, maxt, int(req.PartitionCount), want)
	}
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	resp := &ingesterpb.DigestsResponse{Partitions: make([]*ingesterpb.PartitionDigest, 0, len(parts))}
	for p, pd := range parts {
		out := &ingesterpb.PartitionDigest{Partition: uint32(p), Series: pd.series, Samples: pd.samples, Sum: pd.sum}
		for _, sd := range pd.list {
			out.SeriesDigests = append(out.SeriesDigests, &ingesterpb.SeriesDigest{LabelsHash: sd.hash, Samples: sd.samples, Sum: sd.sum})
		}
		resp.Partitions = append(resp.Partitions, out)
	}
	return resp, nil
}

// Backfill implements the Backfill RPC: samples of any age, from repair.
func (i *Ingester) Backfill(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	defer i.observe("Backfill", time.Now())
	batch, err := ingesterpb.ToSeries(req)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	res, err := i.store.Backfill(ctx, batch)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	return ingesterpb.FromResult(res), nil
}

// DigestHandler serves GET /ingester/digest?start=<ms>&end=<ms>: how many
// series (with a sample in range) and samples this ingester alone stores.
// Operators and tests use it to check replication.
func (i *Ingester) DigestHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		parse := func(name string, def int64) (int64, error) {
			v := r.FormValue(name)
			if v == "" {
				return def, nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parameter %s=%q: not an integer of milliseconds", name, v)
			}
			return n, nil
		}
		start, err := parse("start", math.MinInt64)
		var end int64
		if err == nil {
			end, err = parse("end", math.MaxInt64)
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": err.Error()})
			return
		}
		var series, samples uint64
		err = i.store.SeriesDigests(r.Context(), start, end, func(d vstorage.SeriesDigest) error {
			series++
			samples += uint64(d.Samples)
			return nil
		})
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]uint64{"series": series, "samples": samples})
	})
}
