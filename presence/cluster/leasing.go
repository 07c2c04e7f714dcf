package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heartbeat-go/heartbeat/presence"
)

// The lease driver: it takes, renews and fences this node's lease in
// Redis; the lease type decides when.

// firstRegister takes the lease at start. A lease already held under this
// ID is a crashed predecessor's (it runs out within one TTL) or a live
// node's (it gets renewed): the node waits to see which.
func (n *Node) firstRegister(ctx context.Context) error {
	wait, cancel := context.WithTimeout(ctx, n.ttl+2*n.renew)
	defer cancel()
	var last time.Duration = -1
	for {
		err := n.register(wait)
		var held *heldError
		if !errors.As(err, &held) {
			return err
		}
		pttl, perr := n.rdb.PTTL(wait, n.k.lease).Result()
		switch {
		case perr != nil:
			return fmt.Errorf("%w: %q (held by incarnation %s; %w)", ErrNodeIDInUse, n.cfg.NodeID, held.holder, perr)
		case pttl > 0 && last >= 0 && pttl > last:
			return fmt.Errorf("%w: %q (incarnation %s renewed its lease)", ErrNodeIDInUse, n.cfg.NodeID, held.holder)
		}
		if pttl > 0 {
			last = pttl
		}
		t := time.NewTimer(n.renew / 4)
		select {
		case <-wait.Done():
			t.Stop()
			return fmt.Errorf("%w: %q (held by incarnation %s)", ErrNodeIDInUse, n.cfg.NodeID, held.holder)
		case <-t.C:
		}
	}
}

// heldError: the lease is held by another incarnation.
type heldError struct{ holder string }

func (e *heldError) Error() string { return "lease held by incarnation " + e.holder }
func (e *heldError) Unwrap() error { return ErrNodeIDInUse }

// register takes the lease under a new incarnation with this node's whole
// session set; changes queued so far are in it.
func (n *Node) register(ctx context.Context) error {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	n.mu.Lock()
	set := make(map[sessKey]presence.Meta, len(n.local))
	for k, m := range n.local {
		set[k] = m
	}
	n.mu.Unlock()
	inc, err := reserveScript.Run(ctx, n.rdb, []string{n.k.inc}, time.Now().UnixMilli()).Text()
	if err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	if _, err := decodeInc(inc); err != nil {
		return fmt.Errorf("cluster: register: %w", &KeyspaceError{Key: n.k.inc, Reason: err.Error()})
	}
	// Stage the set, in chunks (a pipeline, one round trip).
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, n.k.stage)
		args := make([]any, 0, 2000)
		for k, m := range set {
			args = append(args, encodeField(k), encodeMeta(m))
			if len(args) == cap(args) {
				p.HSet(ctx, n.k.stage, args...)
				args = make([]any, 0, 2000)
			}
		}
		if len(args) > 0 {
			p.HSet(ctx, n.k.stage, args...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: register: stage: %w", err)
	}
	n.lmu.Lock()
	prev := ""
	if n.lease.inc != 0 {
		prev = strconv.FormatUint(n.lease.inc, 10)
	}
	n.lmu.Unlock()
	sent := time.Now()
	res, err := registerScript.Run(ctx, n.rdb, []string{n.k.lease, n.k.sess, n.k.stage, n.k.stream, n.k.ctr},
		inc, prev, n.ttl.Milliseconds(), n.cfg.StreamMax, n.channel, n.cfg.NodeID, n.streamAge().Milliseconds()).Slice()
	if err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("cluster: register: reply %v", res)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		n.rdb.Del(ctx, n.k.stage)
		return &heldError{holder: fmt.Sprint(res[1])}
	}
	n.rdb.SAdd(ctx, n.nodes, n.cfg.NodeID)
	v, _ := strconv.ParseUint(inc, 10, 64)
	n.lmu.Lock()
	n.lease.taken(v, sent)
	n.armFence()
	n.lmu.Unlock()
	// Changes queued before the snapshot are in the set and stay queued:
	// rewriting an included change is harmless (a change is a state).
	n.st.registrations.Add(1)
	n.logInfo("lease taken", "incarnation", v, "sessions", len(set))
	return nil
}

// fence: the lease is lost (or about to be, by our own count). The node
// stops writing; the lease goroutine re-registers.
func (n *Node) fence(why string) {
	n.lmu.Lock()
	was := n.lease.fence()
	n.lmu.Unlock()
	if was {
		n.st.fences.Add(1)
		if n.cfg.Logger != nil {
			n.cfg.Logger.Warn("cluster: lease lost: "+why, "node", n.cfg.NodeID)
		}
	}
	kick(n.leaseKick)
}

// Registered reports whether the node holds its lease by its own count:
// while false, the other nodes do not (or will not, within one TTL) count
// its sessions.
func (n *Node) Registered() bool {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	return n.lease.holds(time.Now())
}

// leaseLoop renews the lease every Renew, fences at the node's own lease
// deadline, and re-registers after a fence.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTimer(n.renew)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
		case <-n.leaseKick:
		}
		n.leaseStep()
		n.lmu.Lock()
		next := n.lease.next(time.Now())
		n.lmu.Unlock()
		t.Reset(next)
	}
}

func (n *Node) leaseStep() {
	n.lmu.Lock()
	now := time.Now()
	due := n.lease.due(now)
	reg, inc, dl := n.lease.registered && !due, n.lease.inc, n.lease.deadline
	n.lmu.Unlock()
	if due {
		n.fence("not renewed by the node's own lease deadline")
	}
	if !reg {
		ctx, cancel := context.WithTimeout(context.Background(), n.ttl)
		err := n.register(ctx)
		cancel()
		if err != nil {
			n.report(err)
		} else {
			kick(n.writeKick)
		}
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	var renewed *redis.Cmd
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		renewed = renewScript.EvalSha(ctx, p, []string{n.k.lease}, inc, n.ttl.Milliseconds())
		p.SAdd(ctx, n.nodes, n.cfg.NodeID)
		return nil
	})
	n.st.liveness.Add(2)
	if err != nil && isNoScript(renewed.Err()) {
		_, err = renewScript.Load(ctx, n.rdb).Result()
		if err == nil {
			renewed = renewScript.Run(ctx, n.rdb, []string{n.k.lease}, inc, n.ttl.Milliseconds())
			err = renewed.Err()
		}
	}
	if err != nil {
		return // retried next period; fenced at the deadline if it keeps failing
	}
	if v, _ := renewed.Int64(); v != 1 {
		n.fence("Redis no longer holds this incarnation's lease")
		return
	}
	n.lmu.Lock()
	if n.lease.renewed(inc, now) {
		n.armFence()
	}
	n.lmu.Unlock()
}

// armFence sets the timer that fences the node at its deadline: a call
// stuck on a dead link (a dial's handshake has its own timeout) must not
// delay the node's knowing. lmu is held.
func (n *Node) armFence() {
	d := time.Until(n.lease.deadline)
	if n.fenceAt == nil {
		n.fenceAt = time.AfterFunc(d, n.fenceIfDue)
		return
	}
	n.fenceAt.Reset(d)
}

func (n *Node) fenceIfDue() {
	n.lmu.Lock()
	due := n.lease.due(time.Now())
	n.lmu.Unlock()
	if due {
		n.fence("not renewed by the node's own lease deadline")
	}
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
