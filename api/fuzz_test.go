package api

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/golang/snappy"
	commonmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// Seed corpora are in testdata/fuzz/<Name>/ as well as the f.Add calls.
// Run one target with: go test -run='^$' -fuzz='^FuzzRemoteWrite$' -fuzztime=10s ./api

// checkBatchShape checks what every decoder promises: errors are of class
// ErrBadData, every series has samples, and no two series have the same
// label set.
func checkBatchShape(t *testing.T, got []model.Series, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, model.ErrBadData) {
			t.Fatalf("error %q is not ErrBadData", err)
		}
		if got != nil {
			t.Fatalf("error %q with a result", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, s := range got {
		if len(s.Samples) == 0 {
			t.Fatalf("series %s without samples", s.Labels)
		}
		key := string(s.Labels.Bytes(nil))
		if seen[key] {
			t.Fatalf("series %s appears twice", s.Labels)
		}
		seen[key] = true
	}
}

func FuzzRemoteWrite(f *testing.F) {
	f.Add(encodeRemoteWrite(f, []model.Series{
		series([]string{"__name__", "up", "job", "a"}, 1000, 1, 2000, math.NaN()),
		series([]string{"__name__", "x", "a", "1", "a", "2"}, -5, math.Inf(-1)),
	}))
	f.Add(encodeRemoteWrite(f, nil))
	f.Add(marshalWriteRequest(f, toWriteRequest([]model.Series{series([]string{"z", "1", "__name__", "m"}, 1, 1)})))
	f.Add([]byte("\xff\x06\x00\x00sNaPpY"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstPrompb(t, data)
		// The input as a request body, and as the protobuf inside one.
		for _, body := range [][]byte{data, snappy.Encode(nil, data)} {
			got, err := DecodeRemoteWrite(body)
			// Remote write may repeat a label set in several TimeSeries,
			// so only the error class and non-empty series are checked.
			if err != nil {
				if !errors.Is(err, model.ErrBadData) {
					t.Fatalf("error %q is not ErrBadData", err)
				}
				continue
			}
			for _, s := range got {
				if len(s.Samples) == 0 {
					t.Fatalf("series %s without samples", s.Labels)
				}
				prev := ""
				s.Labels.Range(func(l labels.Label) {
					if l.Name < prev {
						t.Fatalf("labels of %s not sorted", s.Labels)
					}
					prev = l.Name
				})
			}
			again, err := DecodeRemoteWrite(encodeRemoteWrite(t, got))
			if err != nil {
				t.Fatalf("re-encoded batch does not decode: %v", err)
			}
			// prompb's proto3 encoder omits a -0 value, as every
			// Prometheus sender does: it arrives as +0.
			for _, s := range got {
				for i := range s.Samples {
					if s.Samples[i].V == 0 {
						s.Samples[i].V = 0
					}
				}
			}
			if !equalBatches(got, again) {
				t.Fatalf("round trip changed the batch:\n%s\n%s", formatBatch(got), formatBatch(again))
			}
		}
	})
}

// renderText writes a batch in the Prometheus text format with quoted
// names, so that any label set parseText returned can be written back.
func renderText(batch []model.Series) []byte {
	var sb strings.Builder
	q := func(s string) string {
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
		return `"` + r.Replace(s) + `"`
	}
	for _, s := range batch {
		for _, smp := range s.Samples {
			sb.WriteString("{")
			sb.WriteString(q(s.Labels.Get(commonmodel.MetricNameLabel)))
			s.Labels.Range(func(l labels.Label) {
				if l.Name == commonmodel.MetricNameLabel {
					return
				}
				sb.WriteString("," + q(l.Name) + "=" + q(l.Value))
			})
			sb.WriteString("} " + formatValue(smp.V) + " " + strconv.FormatInt(smp.T, 10) + "\n")
		}
	}
	return []byte(sb.String())
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func FuzzTextImport(f *testing.F) {
	f.Add([]byte("# HELP m help\n# TYPE m counter\nm{a=\"1\",b=\"x\\\"y\"} 1 1000\nm{a=\"1\",b=\"x\\\"y\"} 2 2000\nn NaN\n"), false)
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"), false)
	f.Add([]byte("{\"my.metric\",\"lé\"=\"v\"} -Inf\n"), false)
	f.Add([]byte("# TYPE foo counter\nfoo_total 17.0 1520879607.789 # {id=\"x\"} 1\n# EOF\n"), true)
	f.Add([]byte("a 1\nb{ 2\n"), false)
	f.Fuzz(func(t *testing.T, body []byte, openMetrics bool) {
		ct := "text/plain; version=0.0.4"
		if openMetrics {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		got, err := ParseText(body, ct, 1234, labels.EmptyLabels())
		checkBatchShape(t, got, err)
		if err != nil {
			return
		}
		for _, s := range got {
			for _, smp := range s.Samples {
				if smp.T < 0 { // OpenMetrics can say it, the Prometheus text format cannot
					return
				}
			}
		}
		text := renderText(got)
		again, err := ParseText(text, "text/plain", 99, labels.EmptyLabels())
		if err != nil {
			t.Fatalf("rendered batch does not parse: %v\n%s", err, text)
		}
		if !equalBatches(got, again) {
			t.Fatalf("round trip changed the batch:\n%s\n%s", formatBatch(got), formatBatch(again))
		}
	})
}

// renderLineProtocol writes each series as measurement <metric name>,
// field "f", millisecond timestamps.
func renderLineProtocol(batch []model.Series) []byte {
	tagEsc := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `=`, `\=`, ` `, `\ `)
	var sb strings.Builder
	for _, s := range batch {
		var tags strings.Builder
		s.Labels.Range(func(l labels.Label) {
			if l.Name != commonmodel.MetricNameLabel {
				tags.WriteString("," + l.Name + "=" + tagEsc.Replace(l.Value))
			}
		})
		for _, smp := range s.Samples {
			sb.WriteString(s.Labels.Get(commonmodel.MetricNameLabel) + tags.String() + " f=" + formatValue(smp.V) + " " + strconv.FormatInt(smp.T, 10) + "\n")
		}
	}
	return []byte(sb.String())
}

func FuzzLineProtocol(f *testing.F) {
	f.Add([]byte("weather,location=us\\ midwest temperature=82,humidity=71i,ok=true,s=\"x\\\"y\" 1465839830100400200\n"), uint8(0))
	f.Add([]byte("cpu,host=a usage=1.5 1700000000\ncpu,host=a usage=2.5 1700000010\n"), uint8(4))
	f.Add([]byte("# comment\n\nm,a=1,b=2 f=1u,g=-3i\r\n"), uint8(2))
	f.Add([]byte("m s=\"multi\nline\",x=1 1\n"), uint8(0))
	f.Add([]byte("bad line\n"), uint8(0))
	precisions := []string{"", "ns", "us", "ms", "s", "m", "h", "n", "u"}
	f.Fuzz(func(t *testing.T, body []byte, prec uint8) {
		precision := precisions[int(prec)%len(precisions)]
		got, err := ParseLineProtocol(body, precision, 1234)
		checkBatchShape(t, got, err)
		if err != nil {
			return
		}
		for _, s := range got {
			s.Labels.Range(func(l labels.Label) {
				if l.Name == commonmodel.MetricNameLabel {
					if !model.IsValidMetricName(l.Value) {
						t.Fatalf("invalid metric name %q", l.Value)
					}
				} else if !model.IsValidLabelName(l.Name) {
					t.Fatalf("invalid label name %q", l.Name)
				}
				if l.Value == "" {
					t.Fatalf("empty value for label %q", l.Name)
				}
			})
			for _, smp := range s.Samples {
				if math.IsNaN(smp.V) || math.IsInf(smp.V, 0) {
					t.Fatalf("non-finite value %v", smp.V)
				}
			}
		}
		text := renderLineProtocol(got)
		again, err := ParseLineProtocol(text, "ms", 99)
		if err != nil {
			t.Fatalf("rendered batch does not parse: %v\n%s", err, text)
		}
		// Rendering used field "f", which the parser appends to the name.
		for i := range again {
			b := labels.NewBuilder(again[i].Labels)
			b.Set(commonmodel.MetricNameLabel, strings.TrimSuffix(again[i].Labels.Get(commonmodel.MetricNameLabel), "_f"))
			again[i].Labels = b.Labels()
		}
		if !equalBatches(got, again) {
			t.Fatalf("round trip changed the batch:\n%s\n%s\n%s", formatBatch(got), text, formatBatch(again))
		}
	})
}
