package collector

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-tsdb/vigil/model"
)

// errInvalidExposition marks a body that cannot be turned into series: it
// does not parse, its content type is unknown, or a series is invalid.
var errInvalidExposition = errors.New("invalid exposition")

// seriesState turns scrape bodies into series and keeps what staleness
// needs across scrapes. Not safe for concurrent use: one Run goroutine.
//
// Per sample it does one map lookup (the raw series text in cache); the
// staleness bookkeeping lives in the records and is swept once per scrape.
type seriesState struct {
	tlabels         labels.Labels
	honorLabels     bool
	honorTimestamps bool
	sampleLimit     int
	fallback        string

	lb *labels.Builder
	// cache maps the raw series text of the exposition to its series, so a
	// series seen before is not parsed and relabelled again. Entries not
	// seen in a successful scrape are dropped; a failed scrape keeps them
	// (Prometheus' scrape cache does the same, and scrape_series_added
	// counts against it).
	cache map[string]*cacheEntry
	// series holds every record a cache entry points to, by final labels
	// (labels.Bytes): two raw texts can name one series.
	series map[string]*seriesRec
	iter   uint64 // number of the current scrape, from 1
}

type cacheEntry struct {
	rec  *seriesRec
	iter uint64 // last scrape that saw this raw text
}

type seriesRec struct {
	lset labels.Labels
	// In the current scrape (iter == seriesState.iter): seen, and whether
	// its sample had no timestamp of its own.
	iter    uint64
	tracked bool
	// In the last successful scrape: present, and tracked. Series with
	// explicit timestamps get no staleness markers, as in Prometheus.
	inLast, lastTracked bool
}

// scrapeResult is what one scrape produced.
type scrapeResult struct {
	series      []model.Series // samples, then staleness markers; report series not included
	scraped     int            // samples in the exposition, native histograms included
	postRelabel int            // samples that passed label handling (what sample_limit counts)
	added       int            // series not in the scrape cache (scrape_series_added)
	stored      int            // samples in series
	stale       int            // staleness markers in series
	dupes       int            // samples dropped because their series came twice
	histograms  int            // native histogram samples dropped (no storage type yet)
}

func newSeriesState(cfg ScraperConfig, tl labels.Labels, honorLabels bool) *seriesState {
	return &seriesState{
		tlabels:         tl,
		honorLabels:     honorLabels,
		honorTimestamps: cfg.HonorTimestamps,
		sampleLimit:     cfg.SampleLimit,
		fallback:        cfg.FallbackContentType,
		lb:              labels.NewBuilder(labels.EmptyLabels()),
		cache:           map[string]*cacheEntry{},
		series:          map[string]*seriesRec{},
	}
}

// apply parses one successful response. On error the scrape counts as
// empty (every series of the last scrape gets a staleness marker) and the
// returned result holds only those markers.
func (st *seriesState) apply(b []byte, contentType string, ts int64) (scrapeResult, error) {
	st.iter++
	var (
		res scrapeResult
		err error
	)
	// An empty body is an empty scrape, not an error (Prometheus does not
	// even look at its content type).
	if len(b) > 0 {
		res, err = st.parse(b, contentType, ts)
	}
	if err != nil {
		res.series, res.stored, res.added, res.dupes = nil, 0, 0, 0
		res.series, res.stale = st.sweep(nil, ts, false)
		return res, err
	}
	res.series, res.stale = st.sweep(res.series, ts, true)
	for k, ce := range st.cache {
		if ce.iter != st.iter {
			delete(st.cache, k)
		}
	}
	return res, nil
}

// failed records a scrape that got no body: every series goes stale.
func (st *seriesState) failed(ts int64) scrapeResult {
	st.iter++
	var res scrapeResult
	res.series, res.stale = st.sweep(nil, ts, false)
	return res
}

// endOfRun returns staleness markers at ts for every tracked series of the
// last scrape and forgets them.
func (st *seriesState) endOfRun(ts int64) []model.Series {
	st.iter++
	batch, _ := st.sweep(nil, ts, false)
	return batch
}

// sweep ends a scrape. It appends a staleness marker at ts for every
// tracked series of the last successful scrape that the current one did
// not have (ok) or for all of them (!ok: the scrape failed or the run
// ends), in label order so that every collector writes the same batch.
// Then the current scrape becomes the last one: with ok, the series it
// had; without, none. Records of series gone from a successful scrape are
// dropped (their cache entries are too).
func (st *seriesState) sweep(batch []model.Series, ts int64, ok bool) ([]model.Series, int) {
	var gone []labels.Labels
	for k, r := range st.series {
		present := ok && r.iter == st.iter
		if r.inLast && r.lastTracked && !present {
			gone = append(gone, r.lset)
		}
		r.inLast, r.lastTracked = present, present && r.tracked
		if ok && !present {
			delete(st.series, k)
		}
	}
	slices.SortFunc(gone, labels.Compare)
	samples := make([]model.Sample, len(gone))
	for i, ls := range gone {
		samples[i] = model.Sample{T: ts, V: math.Float64frombits(value.StaleNaN)}
		batch = append(batch, model.Series{Labels: ls, Samples: samples[i : i+1 : i+1]})
	}
	return batch, len(gone)
}

func (st *seriesState) parse(b []byte, contentType string, ts int64) (res scrapeResult, err error) {
	p, perr := textparse.New(b, contentType, nil, textparse.ParserOptions{
		// Keep the classic buckets of a histogram that also has native ones
		// (protobuf bodies only; text formats have none): the native
		// representation is dropped below.
		KeepClassicOnClassicAndNativeHistograms: true,
		FallbackContentType:                     st.fallback,
	})
	if p == nil {
		if perr == nil {
			perr = fmt.Errorf("no parser for content type %q", contentType)
		}
		return res, fmt.Errorf("%w: %w", errInvalidExposition, perr)
	}
	samples := make([]model.Sample, 0, len(st.series)+1)
	// Room for the report series the loop appends (and a few markers).
	res.series = make([]model.Series, 0, len(st.series)+16)
	var (
		lset     labels.Labels
		limitHit bool
	)
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("%w: %w", errInvalidExposition, err)
		}
		switch et {
		case textparse.EntrySeries:
		case textparse.EntryHistogram:
			// Histogram must be called: it is what makes the protobuf
			// parser emit the classic series of the same histogram next.
			p.Histogram()
			res.scraped++
			res.histograms++
			continue
		default: // type, help, unit, comment
			continue
		}
		res.scraped++
		met, pts, v := p.Series()
		t, tracked := ts, true
		if pts != nil && st.honorTimestamps {
			t, tracked = *pts, false
		}
		ce, cached := st.cache[string(met)]
		if !cached && limitHit {
			// Over the limit the scrape fails anyway: only count.
			res.postRelabel++
			continue
		}
		if !cached {
			p.Labels(&lset)
			final := st.mutate(lset)
			if reason, msg := (model.Limits{}).ValidateLabels(final); reason != "" {
				return res, fmt.Errorf("%w: series %s: %s", errInvalidExposition, final.String(), msg)
			}
			key := string(final.Bytes(nil))
			rec := st.series[key]
			if rec == nil {
				rec = &seriesRec{lset: final}
				st.series[key] = rec
			}
			ce = &cacheEntry{rec: rec}
			st.cache[string(met)] = ce
		}
		ce.iter = st.iter
		res.postRelabel++
		if st.sampleLimit > 0 && res.postRelabel > st.sampleLimit {
			limitHit = true
			continue
		}
		rec := ce.rec
		if rec.iter == st.iter {
			res.dupes++
			continue
		}
		rec.iter, rec.tracked = st.iter, tracked
		if !cached {
			res.added++
		}
		samples = append(samples, model.Sample{T: t, V: v})
		res.series = append(res.series, model.Series{Labels: rec.lset})
	}
	if limitHit {
		return res, fmt.Errorf("%w: %d samples, limit is %d", ErrSampleLimit, res.postRelabel, st.sampleLimit)
	}
	// Slices of one backing array: one allocation for all samples, and
	// appends above may have moved it, so slice only now.
	for i := range res.series {
		res.series[i].Samples = samples[i : i+1 : i+1]
	}
	res.stored = len(res.series)
	return res, nil
}

// mutate adds the target labels to a scraped label set, as Prometheus'
// mutateSampleLabels does without relabelling: with honor_labels the
// scraped value of a label wins; without, the target's wins and the scraped
// one is kept as exported_<name> (exported_exported_<name> if that is
// taken, and so on).
func (st *seriesState) mutate(lset labels.Labels) labels.Labels {
	lb := st.lb
	lb.Reset(lset)
	if st.honorLabels {
		st.tlabels.Range(func(l labels.Label) {
			if !lset.Has(l.Name) {
				lb.Set(l.Name, l.Value)
			}
		})
		return lb.Labels()
	}
	var conflicts []labels.Label
	st.tlabels.Range(func(l labels.Label) {
		if v := lset.Get(l.Name); v != "" {
			conflicts = append(conflicts, labels.Label{Name: l.Name, Value: v})
		}
		lb.Set(l.Name, l.Value)
	})
	slices.SortStableFunc(conflicts, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
	for _, l := range conflicts {
		name := l.Name
		for {
			name = pmodel.ExportedLabelPrefix + name
			if lb.Get(name) == "" {
				lb.Set(name, l.Value)
				break
			}
		}
	}
	return lb.Labels()
}

// acceptHeader is what Prometheus sends by default: OpenMetrics first, then
// the text format, both in their versions with underscore escaping of
// names that are not valid legacy names (Vigil stores legacy names only).
var acceptHeader = strings.Join([]string{
	"application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5",
	"application/openmetrics-text;version=0.0.1;q=0.4",
	"text/plain;version=1.0.0;escaping=underscores;q=0.3",
	"text/plain;version=0.0.4;q=0.2",
	"*/*;q=0.1",
}, ",")
