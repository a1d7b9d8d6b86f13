package storage

import (
	"sort"

	"github.com/vigil-tsdb/vigil/model"
)

// Stats reports the head's cardinality the way Prometheus' TSDB status does:
// the top limit entries of each list.
func (db *DB) Stats(limit int) model.TSDBStatus {
	p := db.head.postings
	p.mu.RLock()
	var byName, valueCount, memBytes, pairs []model.NameCount
	var numPairs uint64
	for name, vals := range p.m {
		valueCount = append(valueCount, model.NameCount{Name: name, Value: uint64(len(vals))})
		var bytes uint64
		for v, refs := range vals {
			bytes += uint64(len(v) * len(refs))
			pairs = append(pairs, model.NameCount{Name: name + "=" + v, Value: uint64(len(refs))})
			if name == model.MetricNameLabel {
				byName = append(byName, model.NameCount{Name: v, Value: uint64(len(refs))})
			}
		}
		numPairs += uint64(len(vals))
		memBytes = append(memBytes, model.NameCount{Name: name, Value: bytes})
	}
	p.mu.RUnlock()
	st := model.TSDBStatus{
		NumSeries:                   uint64(db.head.numSeries.Load()),
		MaxTime:                     db.head.maxt.Load(),
		NumLabelPairs:               numPairs,
		SeriesCountByMetricName:     topN(byName, limit),
		LabelValueCountByLabelName:  topN(valueCount, limit),
		MemoryInBytesByLabelName:    topN(memBytes, limit),
		SeriesCountByLabelValuePair: topN(pairs, limit),
	}
	if parts := db.parts.all(); len(parts) > 0 {
		st.MinTime = partitionStart(parts[0])
	}
	return st
}

func topN(l []model.NameCount, n int) []model.NameCount {
	sort.Slice(l, func(i, j int) bool {
		if l[i].Value != l[j].Value {
			return l[i].Value > l[j].Value
		}
		return l[i].Name < l[j].Name
	})
	if n > 0 && len(l) > n {
		l = l[:n]
	}
	if l == nil {
		l = []model.NameCount{}
	}
	return l
}
