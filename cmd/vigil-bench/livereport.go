package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// writeLiveReport writes report.md, summary.json and the PNG plots into
// dir (created if needed) and returns the names of the files written.
func writeLiveReport(dir string, res *loadgen.LiveResult, runErr error) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create report directory: %w", err)
	}
	s := summarize(res, runErr)
	var files []string
	for _, c := range charts(s) {
		if err := c.draw(dir); err != nil {
			return files, err
		}
		files = append(files, c.file)
	}
	s.Files = append([]string{"report.md", "summary.json"}, files...)

	var md bytes.Buffer
	writeLiveMarkdown(&md, s)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), md.Bytes(), 0o644); err != nil {
		return files, fmt.Errorf("write report.md: %w", err)
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return files, fmt.Errorf("encode summary.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(js, '\n'), 0o644); err != nil {
		return files, fmt.Errorf("write summary.json: %w", err)
	}
	return s.Files, nil
}

func writeLiveMarkdown(w io.Writer, s *liveSummary) {
	fmt.Fprintf(w, "# vigil-bench %s, %s\n\n", s.Mode, s.Started.Format("2006-01-02 15:04:05 MST"))
	if s.Passed {
		fmt.Fprintf(w, "**Result: PASS** — every acknowledged sample that was checked read back intact, no request or query failed, and the load was sustained.\n\n")
	} else {
		fmt.Fprintf(w, "**Result: FAIL**\n\n")
		for _, f := range s.Failures {
			fmt.Fprintf(w, "- %s\n", f)
		}
		fmt.Fprintln(w)
	}

	c := s.Config
	fmt.Fprintf(w, "## Configuration\n\n| setting | value |\n| --- | --- |\n")
	fmt.Fprintf(w, "| target | %s |\n| mode | %s |\n| duration | %.0f s (ran %.1f s) |\n| seed | %d |\n", c.URL, s.Mode, c.DurationSeconds, s.DurationSeconds, c.Seed)
	if s.Push != nil {
		proto := c.Protocol
		if c.GRPC != "" && c.Protocol == loadgen.ProtocolSDK {
			proto += " (" + c.GRPC + ")"
		}
		fmt.Fprintf(w, "| push | %d series, a sample each every %g s, over %s, %d senders, ≤ %d samples per request |\n",
			c.Series, c.IntervalSeconds, proto, c.Concurrency, c.BatchSize)
		fmt.Fprintf(w, "| churn | %g series replaced per minute |\n| out of order | %.1f %% of samples sent late |\n", c.ChurnPerMinute, 100*c.OOOFraction)
		fmt.Fprintf(w, "| verification | %.2f %% of the pushed series |\n", 100*c.VerifyFraction)
	}
	if s.Scrape != nil {
		fmt.Fprintf(w, "| scrape | %d exporters on 127.0.0.1, %d series in all (min %d, median %d, max %d per exporter), scraped every %g s |\n",
			s.Scrape.Exporters, s.Scrape.Series, s.Scrape.SizeMin, s.Scrape.SizeMedian, s.Scrape.SizeMax, c.ScrapeInterval)
	}
	if s.Query != nil {
		fmt.Fprintf(w, "| query | %g queries/s, dashboard mix |\n", c.QPS)
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## Figures\n\n| figure | value |\n| --- | ---: |\n")
	if p := s.Push; p != nil {
		fmt.Fprintf(w, "| push: samples acknowledged | %d |\n| push: acknowledged samples/s | %.0f |\n", p.Acked, p.AckedPerSecond)
		fmt.Fprintf(w, "| push: samples sent / failed / refused | %d / %d / %d |\n", p.Sent, p.Failed, p.Rejected)
		fmt.Fprintf(w, "| push: late (out-of-order) samples acknowledged | %d |\n| push: series replaced by churn | %d |\n", p.Late, p.Churned)
		fmt.Fprintf(w, "| push: requests / retries / failed attempts | %d / %d / %d |\n| push: host groups sent more than an interval late | %d |\n",
			p.Requests, p.Retries, p.Errors, p.BehindGroups)
		fmt.Fprintf(w, "| push: samples due in the run not sent (of them late samples dropped at the end) | %d (%d) |\n", p.NotSent, p.LateDropped)
	}
	if sc := s.Scrape; sc != nil {
		fmt.Fprintf(w, "| scrape: scrapes answered | %d |\n| scrape: samples served | %d |\n| scrape: samples/s served | %.0f |\n",
			sc.Scrapes, sc.Samples, sc.SamplesPerSecond)
		if sc.Refused > 0 {
			fmt.Fprintf(w, "| scrape: scrapes refused after -max-scrapes | %d |\n", sc.Refused)
		}
		if pv := sc.Verification; pv != nil {
			fmt.Fprintf(w, "| scrape: series served / held by Vigil | %d / %d |\n| scrape: exporters up the whole run | %d of %d |\n",
				pv.SeriesServed, pv.SeriesStored, pv.AlwaysUp, pv.Exporters)
		}
	}
	if q := s.Query; q != nil {
		fmt.Fprintf(w, "| query: sent / finished / failed | %d / %d / %d |\n| query: achieved queries/s | %.2f |\n", q.Sent, q.Finished, q.Errors, q.AchievedQPS)
		fmt.Fprintf(w, "| query: ticks skipped, every slot busy | %d |\n", q.Skipped)
		fmt.Fprintf(w, "| query latency p50 / p90 / p99, ms | %.1f / %.1f / %.1f |\n", q.All.P50ms, q.All.P90ms, q.All.P99ms)
	}
	sv := s.Server
	fmt.Fprintf(w, "| Vigil: samples stored during the run | %.0f |\n| Vigil: stored samples/s | %.0f |\n", sv.StoredSamples, sv.StoredPerSecond)
	fmt.Fprintf(w, "| Vigil: RSS max / at the end, MiB | %.0f / %.0f |\n", sv.RSSBytesMax/(1<<20), sv.RSSBytesLast/(1<<20))
	fmt.Fprintf(w, "| Vigil: CPU, cores (average / max) | %.2f / %.2f |\n", sv.CPUCoresAvg, sv.CPUCoresMax)
	fmt.Fprintf(w, "| Vigil: CPU seconds per million samples stored (all its CPU, queries and fixed work included) | %.2f |\n", sv.CPUSecondsPerMillion)
	fmt.Fprintf(w, "| Vigil: /metrics reads (failed) | %d (%d) |\n\n", sv.MetricsReads, sv.MetricsReadErrors)
	if len(s.PlanInputNotes) > 0 {
		fmt.Fprintf(w, "Plan figures (summary.json's plan_input) left out:\n\n")
		for _, n := range s.PlanInputNotes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}

	if q := s.Query; q != nil && len(q.Kinds) > 0 {
		fmt.Fprintf(w, "## Query latency by kind\n\n| kind | query | count | errors | p50 ms | p90 ms | p99 ms | max ms |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		exprs := map[string]string{}
		for _, k := range loadgen.QueryMix() {
			exprs[k.Name] = k.Describe()
		}
		var kinds []string
		for k := range q.Kinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			l := q.Kinds[k]
			fmt.Fprintf(w, "| %s | `%s` | %d | %d | %.1f | %.1f | %.1f | %.1f |\n", k, exprs[k], l.Count, l.Errors, l.P50ms, l.P90ms, l.P99ms, l.MaxMs)
		}
		fmt.Fprintln(w)
		if len(q.ErrorMessages) > 0 {
			fmt.Fprintf(w, "First query errors:\n\n")
			for _, e := range q.ErrorMessages {
				fmt.Fprintf(w, "- %s\n", oneLine(e))
			}
			fmt.Fprintln(w)
		}
	}
	if p := s.Push; p != nil && len(p.ErrorMessages) > 0 {
		fmt.Fprintf(w, "First push errors:\n\n")
		for _, e := range p.ErrorMessages {
			fmt.Fprintf(w, "- %s\n", oneLine(e))
		}
		fmt.Fprintln(w)
	}

	if v := s.Verification; v != nil {
		verdict := "PASS"
		if v.Failed() {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "## Verification: %s\n\n", verdict)
		fmt.Fprintf(w, "%d series (the pushed series at slots drawn at random before the run; a slot's incarnations after churn count apart): every sample of theirs that Vigil acknowledged (%d) was read back with a range selector and compared exactly (timestamp and value bits), in %.1f s.\n\n",
			v.Series, v.RecordedSamples, v.DurationSeconds)
		fmt.Fprintf(w, "| checked | found | missing | different | unreadable series | extra (not acknowledged, stored anyway) |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
		fmt.Fprintf(w, "| %d | %d | %d | %d | %d | %d |\n\n", v.Samples, v.Found, v.Missing, v.Different, v.QueryErrors, v.Extra)
		if len(v.Problems) > 0 {
			fmt.Fprintf(w, "Problems (first %d):\n\n", len(v.Problems))
			for _, p := range v.Problems {
				fmt.Fprintf(w, "- `%s`\n", oneLine(p))
			}
			fmt.Fprintln(w)
		}
	}

	fmt.Fprintf(w, "## Plots\n\n")
	for _, f := range s.Files {
		if strings.HasSuffix(f, ".png") {
			fmt.Fprintf(w, "![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
		}
	}
	fmt.Fprintf(w, "## Machine\n\n%d CPUs, %s, vigil-bench built with %s. Vigil's figures come from its own /metrics, read every %g s.\n",
		s.Machine.CPUs, s.Machine.OS, s.Machine.GoVersion, s.Config.SampleEvery)
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "`", "'")
}
