//go:build docker

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// The compose tests run the cluster of docker/docker-compose.yml from the
// image `make docker` builds (`make test-docker` builds it first). They
// need a Docker engine and `docker compose` or docker-compose, and fail,
// rather than skip, without them: the build tag is the opt-in.

const (
	composeFile = "../docker/docker-compose.yml"
	// composeUpTimeout bounds `compose up` (containers created and
	// started; the image is local, nothing is pulled).
	composeUpTimeout = 3 * time.Minute
	// composeDownTimeout bounds the teardown.
	composeDownTimeout = 3 * time.Minute
	// composeReadyTimeout bounds the wait until both published nodes are
	// ready and see three active, healthy ingesters.
	composeReadyTimeout = 3 * time.Minute

	composeMetric = "vigil_compose_probe"
	// composeWriters each own composeSeriesPerWriter series and send one
	// sample of each per round, a round every composeStep of wall time.
	composeWriters         = 2
	composeSeriesPerWriter = 50
	composeStep            = 250 * time.Millisecond
	// composeMaxRounds bounds each writer (100 s of rounds) even if the
	// test never tells it to stop.
	composeMaxRounds = 400
	// composeRoundDeadline bounds the retries of one round: a round not
	// acknowledged by then is an availability failure.
	composeRoundDeadline = 45 * time.Second
	// composeWriteTimeout bounds one remote-write request.
	composeWriteTimeout = 30 * time.Second
	// composeQueryTimeout bounds one query_range request.
	composeQueryTimeout = 60 * time.Second

	composeWriteBeforeKill = 8 * time.Second
	composeWriteAfterKill  = 20 * time.Second
)

// composeHeadSeries finds the series count in an ingester's start-up
// report (msg="storage ready" ... head_series=N).
var composeHeadSeries = regexp.MustCompile(`msg="storage ready".* head_series=(\d+)`)

// compose drives one compose project: a unique project name, so that
// networks, containers and volumes are its own and are removed with it.
type compose struct {
	t       *testing.T
	cmd     []string // "docker compose" or "docker-compose"
	project string
	env     []string
}

func newCompose(t *testing.T) *compose {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("no Docker engine answers `docker info` (%v): %s", err, bytes.TrimSpace(out))
	}
	var cmd []string
	switch {
	case exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil:
		cmd = []string{"docker", "compose"}
	case exec.CommandContext(ctx, "docker-compose", "version").Run() == nil:
		cmd = []string{"docker-compose"}
	default:
		t.Fatal("neither `docker compose` nor docker-compose is installed")
	}
	image := os.Getenv("VIGIL_IMAGE")
	if image == "" {
		image = "vigil-tsdb/vigil:latest"
	}
	if out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image).CombinedOutput(); err != nil {
		t.Fatalf("image %s not found (%v): run `make docker` first (`make test-docker` does): %s", image, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat(composeFile); err != nil {
		t.Fatalf("compose file: %v", err)
	}
	return &compose{
		t:       t,
		cmd:     cmd,
		project: fmt.Sprintf("vigiltest-%d-%08x", os.Getpid(), rand.Uint32()),
		// Empty port variables make Docker pick free 127.0.0.1 ports, so
		// the test runs beside a `make cluster-up` cluster.
		env: append(os.Environ(), "VIGIL_IMAGE="+image, "VIGIL_QUERIER_PORT=", "VIGIL_DISTRIBUTOR_PORT="),
	}
}

// run runs one compose subcommand and returns its standard output.
func (c *compose) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append(append([]string{}, c.cmd[1:]...), "-p", c.project, "-f", composeFile), args...)
	cmd := exec.CommandContext(ctx, c.cmd[0], full...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", strings.Join(c.cmd, " "), strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// up starts the cluster without the load generator (its load would only
// compete with the test's own writes for the CPUs) and registers the
// teardown first, so that a half-started project is removed too.
func (c *compose) up() {
	c.t.Helper()
	c.t.Cleanup(c.down)
	began := time.Now()
	if _, err := c.run(composeUpTimeout, "up", "-d", "--scale", "loadgen=0"); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("compose project %s up in %v (%s)", c.project, time.Since(began).Round(time.Millisecond), strings.Join(c.cmd, " "))
}

// down copies the logs into the test log when the test failed, then
// removes the containers, network and volumes.
func (c *compose) down() {
	if c.t.Failed() {
		if out, err := c.run(time.Minute, "logs", "--no-color", "--tail=150"); err != nil {
			c.t.Logf("compose logs: %v", err)
		} else {
			c.t.Logf("----- compose logs (last 150 lines per container) -----\n%s----- end of compose logs -----", out)
		}
	}
	// The data is thrown away: SIGKILL at once instead of a graceful,
	// hand-off-attempting stop of every node.
	if _, err := c.run(time.Minute, "kill"); err != nil {
		c.t.Logf("compose kill: %v", err)
	}
	if _, err := c.run(composeDownTimeout, "down", "--volumes", "--remove-orphans", "-t", "5"); err != nil {
		c.t.Errorf("tear down compose project %s: %v", c.project, err)
	}
}

// publishedURL is the http://127.0.0.1:port base URL of a service's
// published HTTP port.
func (c *compose) publishedURL(service string) string {
	c.t.Helper()
	out, err := c.run(time.Minute, "port", service, "9009")
	if err != nil {
		c.t.Fatal(err)
	}
	addr := strings.TrimSpace(out)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		c.t.Fatalf("%s's HTTP port is published on %q, want 127.0.0.1 only", service, addr)
	}
	return "http://" + addr
}

func (c *compose) containerID(service string) string {
	c.t.Helper()
	out, err := c.run(time.Minute, "ps", "-q", service)
	if err != nil {
		c.t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if id == "" || strings.Contains(id, "\n") {
		c.t.Fatalf("container of %s: %q", service, out)
	}
	return id
}

// exited returns the project's containers that are not running, with
// their exit codes.
func (c *compose) exited() []string {
	c.t.Helper()
	out, err := c.run(time.Minute, "ps", "-a", "-q")
	if err != nil {
		c.t.Fatal(err)
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		c.t.Fatal("compose ps lists no containers")
	}
	out, err = composeDocker(time.Minute, append([]string{"inspect", "--format", "{{.Name}} {{.State.Running}} {{.State.ExitCode}}"}, ids...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	var exited []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) != 3 || f[1] != "true" {
			exited = append(exited, line)
		}
	}
	return exited
}

func composeDocker(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// composeMember is the part of a /ring?format=json member the test reads.
type composeMember struct {
	Name    string
	Roles   []string
	State   string
	Healthy bool
	Zone    string
}

// decodeComposeRing decodes a node's /ring?format=json by exact key:
// encoding/json matches keys case-insensitively, and a member carries both
// "roles" (names) and the untagged metadata field "Roles" (a bit set).
func decodeComposeRing(body []byte) ([]composeMember, error) {
	var page struct {
		Members []map[string]json.RawMessage `json:"members"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, err
	}
	members := make([]composeMember, 0, len(page.Members))
	for _, raw := range page.Members {
		var m composeMember
		for key, dst := range map[string]any{"name": &m.Name, "roles": &m.Roles, "state": &m.State, "healthy": &m.Healthy, "zone": &m.Zone, "Zone": &m.Zone} {
			if v, ok := raw[key]; ok {
				if err := json.Unmarshal(v, dst); err != nil {
					return nil, fmt.Errorf("member field %q: %w", key, err)
				}
			}
		}
		if m.Name == "" || m.State == "" {
			return nil, fmt.Errorf("member without name or state: %v", raw)
		}
		members = append(members, m)
	}
	return members, nil
}

// composeActiveIngesters asks one node's /ring?format=json and returns the names
// of the ingesters that are active and healthy, and every ingester's state
// for messages.
func composeActiveIngesters(base string) (active []string, states string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ring?format=json", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s/ring?format=json: %s: %s", base, resp.Status, bytes.TrimSpace(body))
	}
	members, err := decodeComposeRing(body)
	if err != nil {
		return nil, "", fmt.Errorf("decode %s/ring?format=json: %w: %.300s", base, err, body)
	}
	var desc []string
	for _, m := range members {
		if !slices.Contains(m.Roles, "ingester") {
			continue
		}
		desc = append(desc, fmt.Sprintf("%s(%s,%s,healthy=%v)", m.Name, m.Zone, m.State, m.Healthy))
		if strings.EqualFold(m.State, "active") && m.Healthy {
			active = append(active, m.Name)
		}
	}
	return active, strings.Join(desc, " "), nil
}

// composeWaitReady waits until every base URL answers /-/ready and sees the
// three ingesters active and healthy.
func composeWaitReady(t *testing.T, timeout time.Duration, bases ...string) time.Duration {
	t.Helper()
	return eventually(t, timeout, 500*time.Millisecond, "cluster ready with 3 active ingesters", func() error {
		for _, base := range bases {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := httpProbe(base + "/-/ready")(ctx)
			cancel()
			if err != nil {
				return err
			}
			active, states, err := composeActiveIngesters(base)
			if err != nil {
				return err
			}
			if len(active) != 3 {
				return fmt.Errorf("%s sees %d active healthy ingesters: %s", base, len(active), states)
			}
		}
		return nil
	})
}

// composeWriter sends rounds of remote write to a distributor: round k holds
// one sample of each of its series at t0 + k×composeStep with value
// k×1000 + series, sent no earlier than that wall time. A round is retried
// (Retry-After honoured) until it is acknowledged or composeRoundDeadline passes.
type composeWriter struct {
	id     int
	url    string // distributor base URL
	t0     int64  // ms
	client *http.Client

	mu      sync.Mutex  // protects the fields below
	ackedAt []time.Time // per round; zero: not (yet) acknowledged
	sent    int         // rounds attempted
	retries int
	lastErr string
	maxAck  time.Duration // longest first-attempt-to-acknowledgement
	failed  []int         // rounds never acknowledged
}

func composeValue(series, round int) float64 { return float64(round)*1000 + float64(series) }

func composeSeriesName(series int) string { return fmt.Sprintf("s%03d", series) }

// bodies are built in the test goroutine: rwBody may call t.Fatal.
func composeBodies(t *testing.T, run string, w int, t0 int64) [][]byte {
	t.Helper()
	bodies := make([][]byte, composeMaxRounds)
	for k := range bodies {
		ts := t0 + int64(k)*composeStep.Milliseconds()
		series := make([]prompb.TimeSeries, 0, composeSeriesPerWriter)
		for i := range composeSeriesPerWriter {
			s := w*composeSeriesPerWriter + i
			series = append(series, rwSeries(ts, composeValue(s, k),
				"__name__", composeMetric, "run", run, "writer", strconv.Itoa(w), "series", composeSeriesName(s)))
		}
		bodies[k] = rwBody(t, series...)
	}
	return bodies
}

func (w *composeWriter) run(ctx context.Context, bodies [][]byte) {
	for k, body := range bodies {
		due := time.UnixMilli(w.t0 + int64(k)*composeStep.Milliseconds())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(due)):
		}
		w.mu.Lock()
		w.sent = k + 1
		w.mu.Unlock()
		first := time.Now()
		for attempt := 0; ; attempt++ {
			code, retryAfter, err := w.post(body)
			if err == nil && code/100 == 2 {
				w.mu.Lock()
				w.ackedAt[k] = time.Now()
				w.maxAck = max(w.maxAck, time.Since(first))
				w.mu.Unlock()
				break
			}
			msg := fmt.Sprintf("round %d attempt %d: status %d: %v", k, attempt, code, err)
			retryable := err != nil || code == http.StatusTooManyRequests || code/100 == 5
			w.mu.Lock()
			w.lastErr = msg
			if !retryable || time.Since(first) > composeRoundDeadline {
				w.failed = append(w.failed, k)
				w.mu.Unlock()
				break
			}
			w.retries++
			w.mu.Unlock()
			wait := 200 * time.Millisecond
			if retryAfter > 0 {
				wait = min(retryAfter, 2*time.Second)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// post sends one remote-write request, bounded by composeWriteTimeout. An error
// means no HTTP answer.
func (w *composeWriter) post(body []byte) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), composeWriteTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.url+"/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		retryAfter = time.Duration(s) * time.Second
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, retryAfter, fmt.Errorf("%s", bytes.TrimSpace(msg))
	}
	return resp.StatusCode, 0, nil
}

// ackedBefore returns the rounds acknowledged before t.
func (w *composeWriter) ackedBefore(t time.Time) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var rounds []int
	for k, at := range w.ackedAt {
		if !at.IsZero() && at.Before(t) {
			rounds = append(rounds, k)
		}
	}
	return rounds
}

// composeCheckAcked runs one query_range for the probe series over every round
// acknowledged before it starts, at the rounds' own timestamps, and
// returns an error unless the answer is a success without warnings that
// holds each acknowledged sample with its value. A missing sample cannot
// hide behind the lookback: the value at the step of round k would then be
// round k−1's, which differs.
func composeCheckAcked(api promAPI, run string, t0 int64, writers []*composeWriter) (samples int, took time.Duration, err error) {
	began := time.Now()
	want := map[string]map[int64]float64{} // series → ts → value
	last := -1
	for w, pw := range writers {
		for _, k := range pw.ackedBefore(began) {
			ts := t0 + int64(k)*composeStep.Milliseconds()
			for i := range composeSeriesPerWriter {
				s := w*composeSeriesPerWriter + i
				name := composeSeriesName(s)
				if want[name] == nil {
					want[name] = map[int64]float64{}
				}
				want[name][ts] = composeValue(s, k)
				samples++
			}
			last = max(last, k)
		}
	}
	if last < 0 {
		return 0, 0, errors.New("no round acknowledged yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), composeQueryTimeout)
	defer cancel()
	start := time.UnixMilli(t0)
	end := time.UnixMilli(t0 + int64(last)*composeStep.Milliseconds())
	res, err := api.rangeQuery(ctx, fmt.Sprintf("%s{run=%q}", composeMetric, run), start, end, composeStep)
	took = time.Since(began)
	if err != nil {
		return samples, took, err
	}
	if len(res.Warnings) > 0 {
		return samples, took, fmt.Errorf("answer with warnings (incomplete): %q", res.Warnings)
	}
	got := map[string]map[int64]float64{}
	for _, s := range res.Series {
		name := s.Labels.Get("series")
		got[name] = map[int64]float64{}
		for _, p := range s.Points {
			got[name][p.T] = p.V
		}
	}
	var problems []string
	lost := 0
	for name, pts := range want {
		for ts, v := range pts {
			g, ok := got[name][ts]
			if ok && g == v {
				continue
			}
			lost++
			if len(problems) < 5 {
				if ok {
					problems = append(problems, fmt.Sprintf("%s@%d = %v, want %v", name, ts, g, v))
				} else {
					problems = append(problems, fmt.Sprintf("%s@%d missing", name, ts))
				}
			}
		}
	}
	if lost > 0 {
		return samples, took, fmt.Errorf("%d of %d acknowledged samples wrong or missing, e.g. %s", lost, samples, strings.Join(problems, "; "))
	}
	return samples, took, nil
}

// TestComposeIngesterKill is design guarantees 1 and 2 on a real
// multi-container cluster (RF 3, three zones): writes go on while one
// ingester container is SIGKILLed; every acknowledged sample is then read
// back through a querier, queries during the outage are complete (no
// error, no warnings), and after `docker start` the ingester rejoins from
// its volume and reads are still complete.
func TestComposeIngesterKill(t *testing.T) {
	c := newCompose(t)
	c.up()
	querier := c.publishedURL("querier-1")
	distributor := c.publishedURL("distributor-1")
	took := composeWaitReady(t, composeReadyTimeout, querier, distributor)
	t.Logf("querier-1 %s and distributor-1 %s ready with 3 active ingesters after %v", querier, distributor, took.Round(time.Millisecond))
	api := promAPI{name: "querier-1", base: querier}

	run := c.project
	t0 := time.Now().Add(time.Second).Truncate(time.Second).UnixMilli()
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: composeWriters}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	ctx, stopWriters := context.WithCancel(context.Background())
	defer stopWriters()
	writers := make([]*composeWriter, composeWriters)
	var wg sync.WaitGroup
	for w := range writers {
		bodies := composeBodies(t, run, w, t0)
		writers[w] = &composeWriter{id: w, url: distributor, t0: t0, client: client, ackedAt: make([]time.Time, len(bodies))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			writers[w].run(ctx, bodies)
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopWriters()
			wg.Wait()
			stopped = true
		}
	}
	defer stop()

	time.Sleep(composeWriteBeforeKill)
	victim := fmt.Sprintf("ingester-%d", 1+rand.IntN(3))
	id := c.containerID(victim)
	if _, err := composeDocker(time.Minute, "kill", "--signal=KILL", id); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	state, err := composeDocker(time.Minute, "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(state) != "false 137" {
		t.Fatalf("%s after docker kill: running, exit code = %q, want \"false 137\"", victim, strings.TrimSpace(state))
	}
	ackedAtKill := 0
	for _, w := range writers {
		ackedAtKill += len(w.ackedBefore(killedAt))
	}
	t.Logf("SIGKILLed %s (%s) after %d rounds acknowledged", victim, id[:12], ackedAtKill)

	// Queries during the outage, while the writes go on: from the kill on,
	// before and after the failure detector notices.
	var outageQueries, outageFailures int
	var slowest, detected time.Duration
	var lastRing string
	for time.Since(killedAt) < composeWriteAfterKill {
		if detected == 0 {
			active, states, err := composeActiveIngesters(querier)
			if err == nil && !slices.Contains(active, victim) {
				detected = time.Since(killedAt)
				t.Logf("querier-1 sees %s down %v after the kill: %s", victim, detected.Round(time.Millisecond), states)
			}
			lastRing = fmt.Sprint(states, err)
		}
		n, took, err := composeCheckAcked(api, run, t0, writers)
		outageQueries++
		slowest = max(slowest, took)
		if err != nil {
			outageFailures++
			t.Errorf("query during the outage (%v after the kill, %d samples acknowledged): %v", time.Since(killedAt).Round(time.Millisecond), n, err)
		}
		time.Sleep(time.Second)
	}
	stop()
	// Rounds acknowledged after the kill prove the writes went on.
	var rounds, failed, retries, ackedAfterKill int
	var maxAck time.Duration
	for _, w := range writers {
		w.mu.Lock()
		rounds += w.sent
		failed += len(w.failed)
		retries += w.retries
		maxAck = max(maxAck, w.maxAck)
		for _, at := range w.ackedAt {
			if at.After(killedAt) {
				ackedAfterKill++
			}
		}
		if len(w.failed) > 0 {
			t.Errorf("writer %d: %d rounds never acknowledged with one ingester down (RF 3, quorum 2), e.g. round %d; last error: %s", w.id, len(w.failed), w.failed[0], w.lastErr)
		}
		w.mu.Unlock()
	}
	t.Logf("writes: %d rounds of %d samples sent, %d never acknowledged, %d acknowledged after the kill, %d retries, slowest acknowledgement %v",
		rounds, composeSeriesPerWriter, failed, ackedAfterKill, retries, maxAck.Round(time.Millisecond))
	t.Logf("queries during the outage: %d, %d failed or incomplete, slowest %v", outageQueries, outageFailures, slowest.Round(time.Millisecond))
	if ackedAfterKill == 0 {
		t.Fatal("no write was acknowledged after the kill")
	}
	if detected == 0 {
		t.Errorf("querier-1 never saw %s down during the %v outage: %s", victim, composeWriteAfterKill, lastRing)
	}
	if outageQueries < 3 {
		t.Errorf("only %d queries ran during the outage", outageQueries)
	}

	n, took, err := composeCheckAcked(api, run, t0, writers)
	if err != nil {
		t.Fatalf("after the writes, %s still down: %v", victim, err)
	}
	t.Logf("after the writes, %s still down: all %d acknowledged samples read back, 0 lost (query took %v)", victim, n, took.Round(time.Millisecond))

	// The killed container starts again on its volume (and usually a new
	// IP) and rejoins under its name. Every probe series has a replica on
	// every ingester (RF 3 of 3), so the WAL it replays holds all of them;
	// its start-up report says how many series it recovered.
	restartedAt := time.Now()
	if _, err := composeDocker(time.Minute, "start", id); err != nil {
		t.Fatal(err)
	}
	took = composeWaitReady(t, composeReadyTimeout, querier, distributor)
	t.Logf("%s restarted and active again after %v", victim, took.Round(time.Millisecond))
	logs, err := composeDocker(time.Minute, "logs", "--since", restartedAt.Add(-time.Second).Format(time.RFC3339Nano), id)
	if err != nil {
		t.Fatal(err)
	}
	recovered := composeHeadSeries.FindAllStringSubmatch(logs, -1)
	if len(recovered) == 0 {
		t.Fatalf("%s's log after the restart has no storage-ready line with head_series=N:\n%s", victim, logs)
	}
	if n, _ := strconv.Atoi(recovered[len(recovered)-1][1]); n < composeWriters*composeSeriesPerWriter {
		t.Errorf("%s recovered %d series from its volume, want at least the %d probe series", victim, n, composeWriters*composeSeriesPerWriter)
	} else {
		t.Logf("%s recovered %d series from its volume (WAL replay)", victim, n)
	}
	n, took, err = composeCheckAcked(api, run, t0, writers)
	if err != nil {
		t.Fatalf("after %s restarted: %v", victim, err)
	}
	t.Logf("after %s restarted: all %d acknowledged samples read back (query took %v)", victim, n, took.Round(time.Millisecond))
	// Every service of the file still runs (etcd included, which the test
	// does not otherwise use): a crash anywhere is a failure.
	if exited := c.exited(); len(exited) > 0 {
		t.Errorf("containers not running at the end (name, running, exit code): %q", exited)
	}
}
