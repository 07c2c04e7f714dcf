package cluster

import (
	"strconv"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
)

// peers is the rule book of a node's knowledge of the other nodes, sans
// I/O: the driver reads Redis and hands each reply in with the time; the
// reply's meaning comes back as a peerOut (what to read next, what to
// change in the view, what to report). When a node is counted dead, when
// a missing lease is forgiven, when to resync or reap: all of it is here,
// so it runs under rapid and in a simulated cluster as it runs on Redis.
type peers struct {
	self  string
	ttl   time.Duration
	renew time.Duration

	remotes    map[string]*remote
	epoch      string
	graceUntil time.Time // until then a missing lease is not a dead node
	lastPoll   time.Time // of the last poll that reached Redis
}

// remote is what a node knows of another.
type remote struct {
	id      string
	k       keys
	missing time.Time // since when its lease is seen missing while not alive
	alive   bool
	inc     uint64
	n       uint64 // last batch applied
	lastID  string
}

func newPeers(self string, ttl, renew time.Duration) *peers {
	return &peers{self: self, ttl: ttl, renew: renew, remotes: map[string]*remote{}}
}

// peerOut is what one input asks of the driver, in order: the view
// changes first, then the reads.
type peerOut struct {
	views   []viewChange
	resync  []string // read these nodes' whole sets (snapshot)
	fetch   []string // read these nodes' streams after their last entry
	reap    []string // remove these long-dead nodes' keys
	errs    []error  // bad entries to report (KeyspaceError)
	notes   []note   // what an operator wants in the log
	dropped int      // nodes counted dead
}

// note is a line for the log, about another node (peer) or none.
type note struct{ msg, peer string }

// viewChange is a change of one node's set in the view: its whole set
// (replace; nil: the node is dropped) or a batch of changes (ops).
type viewChange struct {
	node    string
	replace bool
	set     map[sessKey]presence.Meta
	ops     []op
}

// apply makes the change in v, appending the events it causes.
func (c *viewChange) apply(v *view, now time.Time, out []presence.Event) []presence.Event {
	if c.replace {
		return v.replace(c.node, c.set, now, out)
	}
	for _, o := range c.ops {
		if o.up {
			out = v.up(c.node, o.key, o.meta, now, out)
		} else {
			out = v.down(c.node, o.key, o.reason, now, out)
		}
	}
	return out
}

// remote returns the node's record, made on first sight; nil for this
// node itself or a name that is no node ID (reported).
func (p *peers) remote(id string, prefix string, out *peerOut) *remote {
	if id == p.self {
		return nil
	}
	if !nodeIDRe.MatchString(id) {
		out.errs = append(out.errs, &KeyspaceError{Key: prefix + ":nodes", Field: id, Reason: "not a node ID"})
		return nil
	}
	r := p.remotes[id]
	if r == nil {
		r = &remote{id: id, k: nodeKeys(prefix, id)}
		p.remotes[id] = r
	}
	return r
}

// polled: Redis answered a poll with the cluster's epoch and node list.
// It returns the nodes to peek: every node known or listed.
func (p *peers) polled(now time.Time, epoch string, members []string, prefix string, out *peerOut) []*remote {
	p.lastPoll = now
	if p.epoch != "" && epoch != p.epoch {
		// Redis lost its data (a restart without persistence, a failover
		// to an empty replica): every lease is gone at once. Nodes
		// re-register within one period; until then a missing lease is
		// not a dead node.
		p.graceUntil = now.Add(p.ttl)
		out.notes = append(out.notes, note{msg: "Redis lost its data: waiting one lease TTL for nodes to re-register"})
	}
	p.epoch = epoch
	rs := make([]*remote, 0, len(p.remotes)+len(members))
	for _, r := range p.remotes {
		rs = append(rs, r)
	}
	for _, id := range members {
		if _, ok := p.remotes[id]; ok {
			continue
		}
		if r := p.remote(id, prefix, out); r != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

// named: pub/sub named nodes with news; it returns the ones to peek.
func (p *peers) named(ids []string, prefix string, out *peerOut) []*remote {
	rs := make([]*remote, 0, len(ids))
	for _, id := range ids {
		if r := p.remote(id, prefix, out); r != nil {
			rs = append(rs, r)
		}
	}
	return rs
}

// pollFailed: Redis did not answer a poll. For up to LeaseTTL + Renew
// since the last answer the view holds still (a blip is no reason for
// leaves); past that this node can no longer tell a live node from a dead
// one, so it drops the others' sessions rather than show ghosts, and
// reads them back when Redis answers.
func (p *peers) pollFailed(now time.Time, out *peerOut) {
	if p.lastPoll.IsZero() || now.Sub(p.lastPoll) <= p.ttl+p.renew {
		return
	}
	for _, r := range p.remotes {
		if r.alive {
			p.drop(r, "Redis has not answered for longer than a lease TTL and a renew period", out)
		}
	}
}

// peeked: a node's lease ("" if missing) and stream head, as one read saw
// them.
func (p *peers) peeked(now time.Time, r *remote, lease, head string, out *peerOut) {
	if lease == "" {
		if r.alive && !now.Before(p.graceUntil) {
			p.drop(r, "its lease is gone (expired, or the node closed)", out)
		}
		switch {
		case r.alive:
		case r.missing.IsZero():
			r.missing = now
		case now.Sub(r.missing) >= time.Duration(reapAfter)*p.ttl:
			out.reap = append(out.reap, r.id)
		}
		return
	}
	r.missing = time.Time{}
	inc, err := decodeInc(lease)
	if err != nil {
		out.errs = append(out.errs, &KeyspaceError{Key: r.k.lease, Reason: err.Error()})
		return
	}
	if !r.alive || inc != r.inc {
		out.resync = append(out.resync, r.id)
	} else if head != r.lastID {
		out.fetch = append(out.fetch, r.id)
	}
}

// snapshot: a node's whole set read at one instant (snapScript's reply:
// lease, batch counter, stream head, then field and value pairs).
// It reports whether the reply was read (counted as a resync).
func (p *peers) snapshot(now time.Time, r *remote, res []string, out *peerOut) bool {
	if len(res) < 3 || len(res)%2 != 1 {
		out.errs = append(out.errs, &KeyspaceError{Key: r.k.sess, Reason: "odd snapshot reply"})
		return false
	}
	if res[0] == "" {
		if r.alive && !now.Before(p.graceUntil) {
			p.drop(r, "its lease is gone (expired, or the node closed)", out)
		}
		return true
	}
	inc, err := decodeInc(res[0])
	if err != nil {
		out.errs = append(out.errs, &KeyspaceError{Key: r.k.lease, Reason: err.Error()})
		return true
	}
	cnt, err := strconv.ParseUint(res[1], 10, 64)
	if err != nil {
		out.errs = append(out.errs, &KeyspaceError{Key: r.k.ctr, Reason: "batch counter " + strconv.Quote(res[1]) + " is not an integer"})
		return true
	}
	set := make(map[sessKey]presence.Meta, (len(res)-3)/2)
	for i := 3; i < len(res); i += 2 {
		k, err := decodeField(res[i])
		if err == nil {
			var m presence.Meta
			if m, err = decodeMeta(res[i+1]); err == nil {
				set[k] = m
				continue
			}
		}
		out.errs = append(out.errs, &KeyspaceError{Key: r.k.sess, Field: res[i], Reason: err.Error()})
	}
	r.alive, r.inc, r.n, r.lastID = true, inc, cnt, res[2]
	out.views = append(out.views, viewChange{node: r.id, replace: true, set: set})
	return true
}

// entries: a page of a node's stream after its last applied entry. Any
// gap (a trimmed stream, a new incarnation, a foreign entry) asks for a
// resync instead. It reports whether to read the next page.
func (p *peers) entries(r *remote, msgs []rawEntry, page int, out *peerOut) bool {
	for _, m := range msgs {
		e, err := decodeEntry(m.id, m.kv)
		if err != nil {
			out.errs = append(out.errs, &KeyspaceError{Key: r.k.stream, Field: m.id, Reason: err.Error()})
			out.resync = append(out.resync, r.id)
			return false
		}
		if e.inc != r.inc || e.n != r.n+1 {
			out.resync = append(out.resync, r.id)
			return false
		}
		out.views = append(out.views, viewChange{node: r.id, ops: e.ops})
		r.n, r.lastID = e.n, e.id
	}
	return len(msgs) == page
}

// badStream: a stream reply could not be read at all.
func (p *peers) badStream(r *remote, err error, out *peerOut) {
	out.errs = append(out.errs, &KeyspaceError{Key: r.k.stream, Reason: err.Error()})
	out.resync = append(out.resync, r.id)
}

// reaped: a long-dead node's keys and ID are gone from Redis.
func (p *peers) reaped(r *remote) { delete(p.remotes, r.id) }

// drop: the node counts as dead; its sessions leave.
func (p *peers) drop(r *remote, why string, out *peerOut) {
	r.alive, r.inc, r.n, r.lastID = false, 0, 0, ""
	out.views = append(out.views, viewChange{node: r.id, replace: true})
	out.notes = append(out.notes, note{msg: "node dropped: " + why, peer: r.id})
	out.dropped++
}
