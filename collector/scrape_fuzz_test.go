package collector

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// FuzzScrapeParse feeds arbitrary bodies to the parse path of the scrape
// loop, as text 0.0.4, text 1.0.0, OpenMetrics or protobuf. It must never
// panic; what it accepts must be valid series carrying the target's labels
// (without honor_labels; with it, a scraped job="" removes job, as in
// Prometheus), one sample each, no label set twice, within the sample limit; parsing the
// same body again must give the same series, no markers and no new series.
func FuzzScrapeParse(f *testing.F) {
	for _, s := range []string{
		nodeExposition,
		"a 1\nb{x=\"y\"} 2 1700000000000\n",
		"m{job=\"j\",instance=\"i\",exported_job=\"e\"} 1\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3\n",
		"# TYPE c counter\nc_total 1 1.5\nc_created 1\n# EOF\n",
		"{\"my.metric\",\"a.b\"=\"c\"} 1\n",
		"m{a=\"1\",a=\"2\"} NaN\nm +Inf\nm -Inf\n",
		"m{a=\"\xff\"} 1\n",
		"m{a=\"1\"} 1\nm{a=\"1\"} 2\n",
		"",
		"\x00\x01\x02",
	} {
		for ct := range uint8(4) {
			f.Add([]byte(s), ct, false)
		}
		f.Add([]byte(s), uint8(0), true)
	}
	contentTypes := []string{ctText, "text/plain; version=1.0.0", ctOpenMetrics,
		"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"}
	tl := labels.FromStrings("job", "node", "instance", "h:1", "rack", "r1")
	f.Fuzz(func(t *testing.T, body []byte, ct uint8, honorLabels bool) {
		cfg := DefaultScraperConfig()
		cfg.SampleLimit = 50
		st := newSeriesState(cfg, tl, honorLabels)
		contentType := contentTypes[int(ct)%len(contentTypes)]
		const ts = 1_700_000_000_000
		res, err := st.apply(body, contentType, ts)
		if err != nil {
			if len(res.series) != 0 {
				t.Fatalf("failed first scrape returned series: %v", res.series)
			}
			return
		}
		if res.stored != len(res.series) || res.stored > cfg.SampleLimit || res.stored+res.dupes > res.postRelabel || res.postRelabel+res.histograms > res.scraped {
			t.Fatalf("inconsistent counts %+v", res)
		}
		seen := map[string]bool{}
		for _, s := range res.series {
			if reason, msg := (model.Limits{}).ValidateLabels(s.Labels); reason != "" {
				t.Fatalf("invalid series %s accepted: %s", s.Labels, msg)
			}
			if !honorLabels && (s.Labels.Get("job") != "node" || s.Labels.Get("instance") != "h:1") {
				t.Fatalf("target labels lost: %s", s.Labels)
			}
			if len(s.Samples) != 1 {
				t.Fatalf("%d samples in %s", len(s.Samples), s.Labels)
			}
			if isStaleMarker(s.Samples[0].V) {
				t.Fatalf("staleness marker from a first scrape: %s", s.Labels)
			}
			k := s.Labels.String()
			if seen[k] {
				t.Fatalf("series %s twice", k)
			}
			seen[k] = true
		}
		again, err := st.apply(body, contentType, ts+1000)
		if err != nil {
			t.Fatalf("same body failed the second time: %v", err)
		}
		if again.added != 0 || again.stale != 0 || len(again.series) != len(res.series) {
			t.Fatalf("second parse differs: %+v vs %+v", again, res)
		}
		for i := range again.series {
			if !labels.Equal(again.series[i].Labels, res.series[i].Labels) {
				t.Fatalf("series %d: %s then %s", i, res.series[i].Labels, again.series[i].Labels)
			}
		}
	})
}
