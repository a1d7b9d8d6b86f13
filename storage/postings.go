package storage

import (
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// memPostings maps label name → value → sorted series refs for the head.
type memPostings struct {
	mu sync.RWMutex // protects m
	m  map[string]map[string][]uint64
}

func newMemPostings() *memPostings { return &memPostings{m: map[string]map[string][]uint64{}} }

func (p *memPostings) add(ref uint64, lset labels.Labels) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lset.Range(func(l labels.Label) {
		vals := p.m[l.Name]
		if vals == nil {
			vals = map[string][]uint64{}
			p.m[l.Name] = vals
		}
		list := vals[l.Value]
		if n := len(list); n == 0 || list[n-1] < ref {
			vals[l.Value] = append(list, ref)
			return
		}
		i := sort.Search(len(list), func(i int) bool { return list[i] >= ref })
		if i < len(list) && list[i] == ref {
			return
		}
		vals[l.Value] = slices.Insert(list, i, ref)
	})
}

func (p *memPostings) del(ref uint64, lset labels.Labels) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lset.Range(func(l labels.Label) {
		vals := p.m[l.Name]
		list := vals[l.Value]
		i := sort.Search(len(list), func(i int) bool { return list[i] >= ref })
		if i == len(list) || list[i] != ref {
			return
		}
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(vals, l.Value)
			if len(vals) == 0 {
				delete(p.m, l.Name)
			}
			return
		}
		vals[l.Value] = list
	})
}

// postingsSource is what matcher evaluation needs from an index: the head's
// postings or one Badger partition's.
type postingsSource interface {
	// values calls fn for every value of name, with a function returning
	// that value's postings (sorted refs).
	forValues(name string, fn func(value string, refs func() ([]uint64, error)) error) error
	// exact returns the postings of name=value.
	exact(name, value string) ([]uint64, error)
}

func (p *memPostings) forValues(name string, fn func(string, func() ([]uint64, error)) error) error {
	p.mu.RLock()
	vals := p.m[name]
	type kv struct {
		v    string
		refs []uint64
	}
	list := make([]kv, 0, len(vals))
	for v, refs := range vals {
		list = append(list, kv{v, slices.Clone(refs)})
	}
	p.mu.RUnlock()
	for _, e := range list {
		if err := fn(e.v, func() ([]uint64, error) { return e.refs, nil }); err != nil {
			return err
		}
	}
	return nil
}

func (p *memPostings) exact(name, value string) ([]uint64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.m[name][value]), nil
}

// names returns the label names in the head.
func (p *memPostings) names() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.m))
	for n := range p.m {
		out = append(out, n)
	}
	return out
}

// selectRefs returns the sorted refs that may match all matchers, using the
// postings for every matcher that does not match the empty string (those
// can only select series that have the label). The caller still checks all
// matchers against the labels. If no matcher narrows the set, every series
// (all values of __name__) is returned.
func selectRefs(src postingsSource, ms []*labels.Matcher) ([]uint64, error) {
	var (
		result []uint64
		first  = true
	)
	for _, m := range ms {
		if m.Matches("") {
			continue
		}
		var refs []uint64
		var err error
		if m.Type == labels.MatchEqual {
			refs, err = src.exact(m.Name, m.Value)
		} else {
			refs, err = unionValues(src, m.Name, m.Matches)
		}
		if err != nil {
			return nil, err
		}
		if first {
			result, first = refs, false
		} else {
			result = intersect(result, refs)
		}
		if len(result) == 0 {
			return nil, nil
		}
	}
	if first {
		return unionValues(src, model.MetricNameLabel, func(string) bool { return true })
	}
	return result, nil
}

func unionValues(src postingsSource, name string, match func(string) bool) ([]uint64, error) {
	var lists [][]uint64
	err := src.forValues(name, func(v string, refs func() ([]uint64, error)) error {
		if !match(v) {
			return nil
		}
		r, err := refs()
		if err != nil {
			return err
		}
		lists = append(lists, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return unionSorted(lists), nil
}

func unionSorted(lists [][]uint64) []uint64 {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]uint64, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func intersect(a, b []uint64) []uint64 {
	out := a[:0:0]
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
