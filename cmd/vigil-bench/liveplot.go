package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotLine is one curve of a chart.
type plotLine struct {
	name   string
	color  color.Color
	dashes []vg.Length
	pts    plotter.XYs
}

// chart is one PNG of the report.
type chart struct {
	file, title, yLabel string
	lines               []plotLine
}

var (
	colBlue   = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colOrange = color.RGBA{R: 255, G: 127, B: 14, A: 255}
	colGreen  = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	colRed    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colPurple = color.RGBA{R: 148, G: 103, B: 189, A: 255}
)

// charts builds the report's charts from the summary's timeline; a chart
// with no data is left out.
func charts(s *liveSummary) []chart {
	var (
		push, scraped, stored, rss, cpu, p50, p90, p99 plotter.XYs
	)
	for _, p := range s.Timeline {
		if s.Push != nil {
			push = append(push, plotter.XY{X: p.Elapsed, Y: p.PushAckedPerSec})
		}
		if s.Scrape != nil {
			scraped = append(scraped, plotter.XY{X: p.Elapsed, Y: p.ScrapedPerSec})
		}
		if p.Server {
			stored = append(stored, plotter.XY{X: p.Elapsed, Y: p.StoredPerSec})
			rss = append(rss, plotter.XY{X: p.Elapsed, Y: p.RSSBytes / (1 << 20)})
			cpu = append(cpu, plotter.XY{X: p.Elapsed, Y: p.CPUCores})
		}
		if p.Queries > 0 {
			p50 = append(p50, plotter.XY{X: p.Elapsed, Y: p.QueryP50ms})
			p90 = append(p90, plotter.XY{X: p.Elapsed, Y: p.QueryP90ms})
			p99 = append(p99, plotter.XY{X: p.Elapsed, Y: p.QueryP99ms})
		}
	}
	ingest := chart{file: "ingest.png", title: "Ingest rate", yLabel: "samples per second"}
	if len(push) > 0 {
		ingest.lines = append(ingest.lines, plotLine{name: "pushed, acknowledged (client)", color: colBlue, pts: push})
	}
	if len(scraped) > 0 {
		ingest.lines = append(ingest.lines, plotLine{name: "served to scrapes (exporters)", color: colOrange, pts: scraped})
	}
	if len(stored) > 0 {
		ingest.lines = append(ingest.lines, plotLine{name: "stored (Vigil: " + "vigil_storage_samples_appended_total)", color: colGreen,
			dashes: []vg.Length{vg.Points(4), vg.Points(2)}, pts: stored})
	}
	out := []chart{ingest}
	if len(p50) > 0 {
		out = append(out, chart{file: "query_latency.png", title: fmt.Sprintf("Query latency, all kinds, per %g s window", s.Config.SampleEvery), yLabel: "latency, ms",
			lines: []plotLine{
				{name: "p50", color: colBlue, pts: p50},
				{name: "p90", color: colOrange, pts: p90},
				{name: "p99", color: colRed, pts: p99},
			}})
	}
	if len(rss) > 0 {
		out = append(out,
			chart{file: "server_rss.png", title: "Vigil resident memory (process_resident_memory_bytes)", yLabel: "RSS, MiB",
				lines: []plotLine{{name: "RSS", color: colPurple, pts: rss}}},
			chart{file: "server_cpu.png", title: "Vigil CPU (rate of process_cpu_seconds_total)", yLabel: "CPU, cores",
				lines: []plotLine{{name: "CPU", color: colRed, pts: cpu}}})
	}
	var kept []chart
	for _, c := range out {
		if len(c.lines) > 0 {
			kept = append(kept, c)
		}
	}
	return kept
}

// draw saves c as a PNG in dir.
func (c chart) draw(dir string) error {
	p := plot.New()
	p.Title.Text = c.title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.X.Label.Text = "time since the start of the run, s"
	p.Y.Label.Text = c.yLabel
	p.X.Min = 0
	p.Y.Min = 0
	p.X.Tick.Marker = niceTicks{}
	p.Y.Tick.Marker = niceTicks{}
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	for _, l := range c.lines {
		line, err := plotter.NewLine(l.pts)
		if err != nil {
			return fmt.Errorf("plot %s: %s: %w", c.file, l.name, err)
		}
		line.LineStyle.Color = l.color
		line.LineStyle.Width = vg.Points(1.8)
		line.LineStyle.Dashes = l.dashes
		p.Add(line)
		p.Legend.Add(l.name, line)
		if len(l.pts) == 1 { // a single point draws no line: mark it
			sc, err := plotter.NewScatter(l.pts)
			if err == nil {
				sc.GlyphStyle.Color = l.color
				sc.GlyphStyle.Shape = draw.CircleGlyph{}
				p.Add(sc)
			}
		}
	}
	// Room above the highest curve for the legend.
	_, _, _, ymax := plotter.XYRange(allPoints(c.lines))
	p.Y.Max = ymax*1.35 + 1e-9
	if err := p.Save(20*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, c.file)); err != nil {
		return fmt.Errorf("save %s: %w", c.file, err)
	}
	return nil
}

func allPoints(lines []plotLine) plotter.XYs {
	var all plotter.XYs
	for _, l := range lines {
		all = append(all, l.pts...)
	}
	return all
}

// niceTicks labels about six round values (1, 2, 2.5 or 5 × 10^k apart)
// with k/M suffixes: gonum's default labels only two or three.
type niceTicks struct{}

var _ plot.Ticker = niceTicks{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: tickLabel(lo)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / step); i*step <= hi*(1+1e-9) && len(ticks) < 50; i++ {
		v := i * step
		ticks = append(ticks, plot.Tick{Value: v, Label: tickLabel(v)})
		// One unlabelled minor tick halfway.
		if mid := v + step/2; mid <= hi {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}

func tickLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', -1, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}
