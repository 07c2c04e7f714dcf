package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// The write and sync drivers: this node's changes go to Redis in fenced
// batches; the other nodes' leases, sets and streams are read and handed
// to the peers type, whose answers are carried out here.

// maxBatch bounds one write: Lua's unpack takes a few thousand values.
const maxBatch = 500

// writeLoop writes queued changes in batches, fenced by the lease.
func (n *Node) writeLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.renew / 2) // retries after an error
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-n.writeKick:
		case <-t.C:
		}
		for n.writeBatch() {
		}
	}
}

// writeBatch writes one batch; it reports whether to go on at once.
func (n *Node) writeBatch() bool {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	n.lmu.Lock()
	ok, inc, dl := n.lease.holds(time.Now()), n.lease.inc, n.lease.deadline
	n.lmu.Unlock()
	if !ok {
		return false // the next registration writes the whole set
	}
	n.mu.Lock()
	cnt := min(len(n.order), maxBatch)
	batch := make([]op, 0, cnt)
	for _, k := range n.order[:cnt] {
		batch = append(batch, n.pend[k])
		delete(n.pend, k)
	}
	n.order = append(n.order[:0], n.order[cnt:]...)
	n.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	args := make([]any, 0, 5+2*len(batch))
	args = append(args, inc, n.cfg.StreamMax, n.channel, n.cfg.NodeID, n.streamAge().Milliseconds())
	for _, o := range batch {
		f, v := encodeOp(o)
		args = append(args, f, v)
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	err := writeScript.Run(ctx, n.rdb, []string{n.k.lease, n.k.sess, n.k.stream, n.k.ctr}, args...).Err()
	switch {
	case err == nil:
		return true
	case errors.Is(err, redis.Nil):
		n.fence("a write was refused")
		return false
	default:
		// Put back what was not changed again meanwhile: a change is a
		// state, so writing it twice is harmless.
		n.mu.Lock()
		for _, o := range batch {
			if _, ok := n.pend[o.key]; !ok {
				n.pend[o.key] = o
				n.order = append(n.order, o.key)
			}
		}
		n.mu.Unlock()
		return false
	}
}

// listen turns pub/sub notices into polls of the nodes they name.
func (n *Node) listen() {
	defer n.wg.Done()
	ch := n.ps.Channel()
	for {
		select {
		case <-n.stopped:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Payload == n.cfg.NodeID || !nodeIDRe.MatchString(m.Payload) {
				continue
			}
			n.mu.Lock()
			n.dirty[m.Payload] = true
			n.mu.Unlock()
			kick(n.syncKick)
		}
	}
}

// syncLoop polls every node each Renew and the ones pub/sub names at once.
func (n *Node) syncLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.renew)
	defer t.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-t.C:
			n.tick()
		case <-n.syncKick:
			n.mu.Lock()
			ids := make([]string, 0, len(n.dirty))
			for id := range n.dirty {
				ids = append(ids, id)
			}
			clear(n.dirty)
			n.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), n.ttl)
			var out peerOut
			rs := n.peers.named(ids, n.cfg.Prefix, &out)
			n.settle(ctx, &out)
			n.peek(ctx, rs, false)
			cancel()
		}
	}
}

// tick polls the epoch, the node list and every node's lease and stream
// head: a constant number of commands per node, whatever the sessions.
func (n *Node) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), n.ttl)
	defer cancel()
	var ep *redis.StringCmd
	var mem *redis.StringSliceCmd
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ep = p.Get(ctx, n.epochK)
		mem = p.SMembers(ctx, n.nodes)
		return nil
	})
	n.st.liveness.Add(2)
	if err != nil && !errors.Is(err, redis.Nil) {
		n.stale(ctx)
		return
	}
	e, err := ep.Result()
	if errors.Is(err, redis.Nil) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		n.rdb.SetNX(ctx, n.epochK, hex.EncodeToString(b[:]), 0)
		e, err = n.rdb.Get(ctx, n.epochK).Result()
		n.st.liveness.Add(2)
	}
	if err != nil {
		n.stale(ctx)
		return
	}
	var out peerOut
	rs := n.peers.polled(time.Now(), e, mem.Val(), n.cfg.Prefix, &out)
	n.settle(ctx, &out)
	n.peek(ctx, rs, true)
}

// stale: Redis did not answer a poll (see peers.pollFailed).
func (n *Node) stale(ctx context.Context) {
	var out peerOut
	n.peers.pollFailed(time.Now(), &out)
	n.settle(ctx, &out)
}

// settle carries out what the peers' rules asked: the view changes, with
// their events, then the reads (which settle their own replies).
func (n *Node) settle(ctx context.Context, out *peerOut) {
	if len(out.views) > 0 {
		now := time.Now()
		n.mu.Lock()
		n.evs = n.evs[:0]
		for i := range out.views {
			n.evs = out.views[i].apply(n.view, now, n.evs)
		}
		n.enqueue()
		n.mu.Unlock()
	}
	for _, err := range out.errs {
		n.report(err)
	}
	for _, nt := range out.notes {
		if nt.peer != "" {
			n.logInfo(nt.msg, "peer", nt.peer)
		} else {
			n.logInfo(nt.msg)
		}
	}
	n.st.dropped.Add(uint64(out.dropped))
	for _, id := range out.resync {
		if r := n.peers.remotes[id]; r != nil {
			n.resync(ctx, r)
		}
	}
	for _, id := range out.fetch {
		if r := n.peers.remotes[id]; r != nil {
			n.fetch(ctx, r)
		}
	}
	for _, id := range out.reap {
		if r := n.peers.remotes[id]; r != nil {
			n.reap(ctx, r)
		}
	}
}

// peek reads the lease and stream head of the nodes named, one pipeline,
// and settles what the replies mean.
func (n *Node) peek(ctx context.Context, rs []*remote, liveness bool) {
	if len(rs) == 0 {
		return
	}
	cmds := make([]*redis.Cmd, 0, len(rs))
	_, _ = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range rs {
			cmds = append(cmds, p.Eval(ctx, peekScript, []string{r.k.lease, r.k.stream}))
		}
		return nil
	})
	if liveness {
		n.st.liveness.Add(uint64(len(rs)))
	}
	var out peerOut
	now := time.Now()
	for i, r := range rs {
		res, err := cmds[i].StringSlice()
		if err != nil || len(res) != 2 {
			continue // unreachable: try again next period
		}
		n.peers.peeked(now, r, res[0], res[1], &out)
	}
	n.settle(ctx, &out)
}

// reapAfter, in lease TTLs, is how long a node's lease stays missing
// before its keys and its ID are removed: the sessions of a node that
// never comes back must not stay in Redis for ever.
var reapAfter = 10

// reap removes a long-dead node's sessions, stream and ID. The script
// deletes nothing if the node has taken its lease again meanwhile, and
// leaves its stage alone (a registration in progress); a live node adds
// its ID back with every renewal.
func (n *Node) reap(ctx context.Context, r *remote) {
	if err := reapScript.Run(ctx, n.rdb, []string{r.k.lease, r.k.sess, r.k.stream, r.k.ctr, r.k.inc}).Err(); err != nil {
		return
	}
	if err := n.rdb.SRem(ctx, n.nodes, r.id).Err(); err != nil {
		return
	}
	n.peers.reaped(r)
	n.logInfo("dead node's keys removed", "peer", r.id)
}

// resync reads a node's whole set at one instant.
func (n *Node) resync(ctx context.Context, r *remote) {
	res, err := snapScript.Run(ctx, n.rdb, []string{r.k.lease, r.k.sess, r.k.stream, r.k.ctr}).StringSlice()
	if err != nil {
		return
	}
	var out peerOut
	if n.peers.snapshot(time.Now(), r, res, &out) {
		n.st.resyncs.Add(1)
	}
	n.settle(ctx, &out)
}

// fetch reads a node's stream after the last entry applied, a page at a
// time.
func (n *Node) fetch(ctx context.Context, r *remote) {
	for {
		start := "-"
		if r.lastID != "" {
			start = "(" + r.lastID
		}
		raw, err := n.rdb.Do(ctx, "XRANGE", r.k.stream, start, "+", "COUNT", streamPage).Slice()
		if err != nil {
			return
		}
		var out peerOut
		more := false
		if msgs, err := rawEntries(raw); err != nil {
			n.peers.badStream(r, err, &out)
		} else {
			more = n.peers.entries(r, msgs, streamPage, &out)
		}
		n.settle(ctx, &out)
		if !more {
			return
		}
	}
}

// streamPage is how many stream entries one read takes.
const streamPage = 1000
