package cluster

import "time"

// lease is this node's own count of its lease, sans I/O: the driver
// tells it what Redis answered and when the request was sent, and asks it
// whether the node may still write and when to act next. The lease runs
// out in Redis TTL after the last renewal Redis applied, which is after
// the request was sent; counting from the send, less LeaseMargin, the
// node always knows its lease lost before Redis expires it: it stops
// writing (fences) before another node can count its sessions gone.
type lease struct {
	ttl, renew time.Duration
	inc        uint64    // current (or last) incarnation; 0: none yet
	registered bool      // holding the lease by the node's own count
	deadline   time.Time // the node's own end of the lease
}

// own is how long after sending a renewal the node counts on its lease.
func (l *lease) own() time.Duration {
	return time.Duration(float64(l.ttl) * (1 - LeaseMargin))
}

// taken: a registration sent at sent took the lease under inc.
func (l *lease) taken(inc uint64, sent time.Time) {
	l.inc, l.registered, l.deadline = inc, true, sent.Add(l.own())
}

// renewed: a renewal of inc sent at sent was applied. It reports whether
// the deadline moved (a fence or a new incarnation since makes it stale).
func (l *lease) renewed(inc uint64, sent time.Time) bool {
	if !l.registered || l.inc != inc {
		return false
	}
	l.deadline = sent.Add(l.own())
	return true
}

// fence: the lease is lost, or about to be by the node's count. It
// reports whether the node held it until now.
func (l *lease) fence() bool {
	was := l.registered
	l.registered = false
	return was
}

// holds reports whether the node may act on its lease at now: write, or
// count its sessions as the cluster's.
func (l *lease) holds(now time.Time) bool { return l.registered && now.Before(l.deadline) }

// due reports whether the node's own deadline has passed unrenewed: time
// to fence.
func (l *lease) due(now time.Time) bool { return l.registered && !now.Before(l.deadline) }

// next is how long the lease goroutine sleeps after a step at now: a
// renew period, cut short by the deadline; a quarter of it while the
// node is out of its lease and retries registering.
func (l *lease) next(now time.Time) time.Duration {
	if !l.registered {
		return max(l.renew/4, time.Millisecond)
	}
	return max(min(l.renew, l.deadline.Sub(now)), time.Millisecond)
}
