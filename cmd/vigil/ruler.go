package main

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-tsdb/vigil/ring"
	"github.com/vigil-tsdb/vigil/rules"
)

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
