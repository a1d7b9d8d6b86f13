package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-tsdb/vigil/ring"
)

// Coordination keys under ManagerConfig.CoordPrefix (docs/collector.md,
// "Coordination"):
//
//	<prefix>loads/<collector>   loadReport, under the collector's lease
//	<prefix>assignment          assignmentRecord, written by the leader
const (
	loadsDir      = "loads/"
	assignmentKey = "assignment"
	// maxCoordValue bounds what a collector decodes from one key.
	maxCoordValue = 8 << 20
)

// loadReport is what one collector measured: the series count of the last
// scrape of every target it scrapes.
type loadReport struct {
	Collector string         `json:"collector"`
	Time      time.Time      `json:"time"`
	Series    map[string]int `json:"series"` // target key -> series
}

// assignmentRecord is the last assignment the leader computed, stored as
// its exceptions: a target's owner is Moved[key] if present, else
// ring.Rendezvous(Members, key). Every collector uses it as Assign's prev, so
// that all compute the same, stable assignment.
type assignmentRecord struct {
	Version int               `json:"version"` // 1
	Writer  string            `json:"writer"`
	Time    time.Time         `json:"time"`
	Members []string          `json:"members"` // sorted
	Moved   map[string]string `json:"moved"`
}

// newRecord encodes owners (target key -> collector) for members.
func newRecord(writer string, members []string, owners map[string]string, now time.Time) *assignmentRecord {
	r := &assignmentRecord{Version: 1, Writer: writer, Time: now.UTC(), Members: slices.Sorted(slices.Values(members)), Moved: map[string]string{}}
	for k, c := range owners {
		if ring.Rendezvous(r.Members, k) != c {
			r.Moved[k] = c
		}
	}
	return r
}

// prev decodes the record for the given target keys.
func (r *assignmentRecord) prev(keys []string) map[string]string {
	if r == nil || len(r.Members) == 0 {
		return nil
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if c, ok := r.Moved[k]; ok {
			out[k] = c
		} else {
			out[k] = ring.Rendezvous(r.Members, k)
		}
	}
	return out
}

// sameAssignment reports whether r already describes owners for members.
func (r *assignmentRecord) sameAssignment(members []string, owners map[string]string) bool {
	if r == nil || !slices.Equal(r.Members, slices.Sorted(slices.Values(members))) {
		return false
	}
	for k, c := range owners {
		want, ok := r.Moved[k]
		if !ok {
			want = ring.Rendezvous(r.Members, k)
		}
		if want != c {
			return false
		}
	}
	return true
}

// decodeRecord validates a stored assignment record.
func decodeRecord(b []byte) (*assignmentRecord, error) {
	var r assignmentRecord
	if err := decodeCoordJSON(b, &r); err != nil {
		return nil, err
	}
	if r.Version != 1 {
		return nil, fmt.Errorf("version %d: want 1", r.Version)
	}
	if r.Moved == nil {
		r.Moved = map[string]string{}
	}
	slices.Sort(r.Members)
	return &r, nil
}

// decodeReport validates a stored load report.
func decodeReport(b []byte) (loadReport, error) {
	var r loadReport
	if err := decodeCoordJSON(b, &r); err != nil {
		return loadReport{}, err
	}
	for k, n := range r.Series {
		if n < 0 {
			return loadReport{}, fmt.Errorf("series of %q: %d is negative", k, n)
		}
	}
	return r, nil
}

func decodeCoordJSON(b []byte, v any) error {
	if len(b) > maxCoordValue {
		return fmt.Errorf("value of %d bytes exceeds %d", len(b), maxCoordValue)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if d.More() {
		return fmt.Errorf("decode: trailing data after the JSON value")
	}
	return nil
}

// coordState is the coordination keys at one etcd revision.
type coordState struct {
	Record    *assignmentRecord
	RecordRev int64 // mod revision of the record key; 0 when absent
	Reports   map[string]loadReport
}

// loads merges the reports: for each target the count of the newest
// report that has it.
func (st coordState) loads() map[string]int {
	names := slices.Sorted(maps.Keys(st.Reports))
	// Oldest first, so that newer reports overwrite; ties by name.
	slices.SortStableFunc(names, func(a, b string) int { return st.Reports[a].Time.Compare(st.Reports[b].Time) })
	out := map[string]int{}
	for _, n := range names {
		maps.Copy(out, st.Reports[n].Series)
	}
	return out
}

// coordinator reads and writes the coordination keys.
type coordinator struct {
	client *clientv3.Client
	prefix string
	name   string
	ttl    time.Duration
	logger *slog.Logger
	onErr  func()

	lease clientv3.LeaseID // of this collector's load report; 0 before the first write
}

// watch delivers the coordination state after the first read and after
// every change, with a full re-read after compaction or a lost watch;
// while etcd is unavailable nothing is delivered (the last state stays in
// force). The channel holds the newest state only; it is closed when ctx
// ends.
func (c *coordinator) watch(ctx context.Context, retry, maxRetry time.Duration) <-chan coordState {
	out := make(chan coordState, 1)
	deliver := func(st coordState) {
		select {
		case <-out:
		default:
		}
		out <- st
	}
	go func() {
		defer close(out)
		backoff := retry
		for ctx.Err() == nil {
			st, rev, err := c.read(ctx)
			if err == nil {
				backoff = retry
				deliver(st)
				err = c.follow(ctx, &st, rev, deliver)
			}
			if ctx.Err() != nil {
				return
			}
			c.onErr()
			c.logger.Warn("collector coordination in etcd unavailable, keeping the last state", "prefix", c.prefix, "retry_in", backoff, "err", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxRetry)
		}
	}()
	return out
}

func (c *coordinator) read(ctx context.Context) (coordState, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.client.Get(rctx, c.prefix, clientv3.WithPrefix())
	if err != nil {
		return coordState{}, 0, fmt.Errorf("read %s: %w", c.prefix, err)
	}
	st := coordState{Reports: map[string]loadReport{}}
	for _, kv := range resp.Kvs {
		c.apply(&st, string(kv.Key), kv.Value, kv.ModRevision, false)
	}
	return st, resp.Header.Revision, nil
}

// follow applies watch events to st until the watch fails.
func (c *coordinator) follow(ctx context.Context, st *coordState, rev int64, deliver func(coordState)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range c.client.Watch(wctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", c.prefix, err)
		}
		next := coordState{Record: st.Record, RecordRev: st.RecordRev, Reports: maps.Clone(st.Reports)}
		for _, ev := range resp.Events {
			c.apply(&next, string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete)
		}
		*st = next
		deliver(next)
	}
	return fmt.Errorf("watch %s: %w", c.prefix, errWatchClosed)
}

// apply records one key in st; invalid values are logged and skipped.
func (c *coordinator) apply(st *coordState, key string, val []byte, modRev int64, deleted bool) {
	rest := strings.TrimPrefix(key, c.prefix)
	switch {
	case rest == assignmentKey:
		if deleted {
			st.Record, st.RecordRev = nil, 0
			return
		}
		r, err := decodeRecord(val)
		if err != nil {
			c.onErr()
			c.logger.Warn("ignoring an invalid assignment record", "key", key, "err", err)
			st.Record, st.RecordRev = nil, modRev // overwritten by the next leader write
			return
		}
		st.Record, st.RecordRev = r, modRev
	case strings.HasPrefix(rest, loadsDir):
		name := strings.TrimPrefix(rest, loadsDir)
		if deleted {
			delete(st.Reports, name)
			return
		}
		r, err := decodeReport(val)
		if err != nil {
			c.onErr()
			c.logger.Warn("ignoring an invalid load report", "key", key, "err", err)
			delete(st.Reports, name)
			return
		}
		st.Reports[name] = r
	}
}

// report writes this collector's load report under its lease, granting a
// new lease when there is none or the old one expired.
func (c *coordinator) report(ctx context.Context, r loadReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for attempt := 0; attempt < 2; attempt++ {
		if c.lease == 0 {
			g, err := c.client.Grant(ctx, int64(c.ttl/time.Second))
			if err != nil {
				return fmt.Errorf("grant a lease for the load report: %w", err)
			}
			c.lease = g.ID
		}
		// A keep-alive per write: the report is rewritten well within the TTL.
		if _, err := c.client.KeepAliveOnce(ctx, c.lease); err != nil {
			c.lease = 0
			continue
		}
		if _, err := c.client.Put(ctx, c.prefix+loadsDir+c.name, string(b), clientv3.WithLease(c.lease)); err != nil {
			return fmt.Errorf("write the load report: %w", err)
		}
		return nil
	}
	return fmt.Errorf("write the load report: lease lost twice")
}

// publish writes the assignment record if the stored one is still at
// rev (0: absent). It reports whether it wrote; a lost race is not an
// error (the watch brings the other writer's record).
func (c *coordinator) publish(ctx context.Context, r *assignmentRecord, rev int64) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	key := c.prefix + assignmentKey
	resp, err := c.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return false, fmt.Errorf("write the assignment record: %w", err)
	}
	return resp.Succeeded, nil
}
