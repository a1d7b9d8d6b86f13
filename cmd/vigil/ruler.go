package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/ring"
	"github.com/vigil-tsdb/vigil/rules"
)

// startRuler builds the ruler of a node that queries and writes (the
// single node, which owns every group; in a cluster, -target's ruler role
// with querier and distributor, sharded over the ruler ring) and mounts
// the rule and alert APIs; in a cluster, queriers and rulers serve them
// gathered from every ruler.
func (n *node) startRuler(mux *http.ServeMux, queryable promstorage.Queryable, engine promql.QueryEngine) error {
	if n.roles["ruler"] && n.ruleStore != nil && n.dist != nil && engine != nil {
		rcfg := n.cfg.Ruler
		if rcfg.ExternalURL == "" {
			rcfg.ExternalURL = n.httpURL
		}
		var notify promrules.NotifyFunc
		if n.notifier != nil {
			notify = notifyFunc(n.notifier, rcfg.ExternalURL)
		}
		var err error
		if n.ruler, err = rules.NewRuler(rcfg, queryable, engine, n.dist, notify, n.logger.With("component", "ruler"), n.reg); err != nil {
			return err
		}
		if n.cluster {
			cl := n.ring
			n.ruler.SetOwnership(cl.LocalName(), func() []string { return activeMembers(cl, ring.RoleRuler) })
		}
		mux.Handle("/ruler/", n.ruler.Handler())
		if !n.cluster {
			mux.Handle("/api/v1/rules", n.ruler.Handler())
			mux.Handle("/api/v1/alerts", n.ruler.Handler())
		}
	}
	if n.cluster && (n.roles["querier"] || n.roles["ruler"]) {
		// Every ruler's groups and alerts, gathered (docs/alerting.md).
		gather := rules.Gather(func() []rules.Peer { return rulerPeers(n.ring) }, &http.Client{},
			n.cfg.Ruler.GatherTimeout, n.logger.With("component", "ruler-gather"))
		mux.Handle("/api/v1/rules", gather)
		mux.Handle("/api/v1/alerts", gather)
	}
	return nil
}

// runRuler evaluates the stored rule groups until ctx ends, applying each
// new snapshot of the rule store and, in a cluster, each ring change.
func (n *node) runRuler(ctx context.Context) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	snaps := n.ruleStore.Watch(rctx)
	done := make(chan struct{})
	go func() { defer close(done); n.ruler.Run(rctx) }()
	if n.ring != nil {
		changes := n.ring.Subscribe()
		following := make(chan struct{})
		go func() { defer close(following); n.ruler.Follow(rctx, changes) }()
		defer func() { cancel(); <-following }()
	}
	for snap := range snaps {
		if err := n.ruler.Apply(snap); err != nil {
			n.logger.Error("rule groups not applied; the previous ones stay in force", "err", err)
		}
	}
	cancel()
	<-done
}

// activeMembers returns the names of the active, healthy members of role.
func activeMembers(r ring.Ring, role ring.Role) []string {
	var out []string
	for _, m := range r.Members(role) {
		if m.Healthy && m.State == ring.StateActive {
			out = append(out, m.Name)
		}
	}
	return out
}

// rulerPeers returns the rulers of the ring that Gather asks: every
// healthy one, whatever its state (a leaving ruler still evaluates the
// groups it hands over; a joining one owns none yet and answers empty).
func rulerPeers(r ring.Ring) []rules.Peer {
	var out []rules.Peer
	for _, m := range r.Members(ring.RoleRuler) {
		if m.Healthy && m.HTTPAddr != "" {
			out = append(out, rules.Peer{Name: m.Name, URL: "http://" + m.HTTPAddr})
		}
	}
	return out
}

// shutdownRuler stops the ruler. A cluster ruler first announces leaving
// and keeps evaluating its groups while the other rulers take them over
// (make-before-break, docs/alerting.md "Sharding and hand-over").
func (n *node) shutdownRuler() error {
	var err error
	if n.ring != nil {
		if err = n.ring.SetState(ring.StateLeaving); err != nil {
			err = fmt.Errorf("ruler: announce leaving: %w", err)
		} else {
			wait := n.cfg.Ruler.HandoverOverlap + time.Second // + gossip
			n.logger.Info("announced leaving; handing rule groups over", "wait", wait)
			time.Sleep(wait)
		}
	}
	n.rulerStop()
	n.rulerStop = nil
	return err
}
