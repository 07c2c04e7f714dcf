package cluster

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
)

// The keyspace model the simulated cluster runs against: what the
// scripts keep in Redis, on virtual time, as the scripts change it.

// simLease is a lease in the keyspace model.
type simLease struct {
	inc uint64
	exp time.Duration
}

// keyspace is the model of what the scripts keep in Redis.
type keyspace struct {
	epoch  string
	epochs int
	nodes  map[string]bool
	leases map[string]simLease
	incs   map[string]uint64
	sess   map[string]map[string]string
	ctr    map[string]uint64
	stream map[string][]rawEntry
	ids    int
	// lapsed is when each node's lease last ended by expiry or deletion
	// (not by Redis losing its data): the ground truth of "the node was
	// out of its lease".
	lapsed map[string]time.Duration
	// gone is since when a lease has been missing because Redis lost its
	// data, until the node registers again: a node away for longer than
	// the grace (one TTL) was out of the cluster too.
	gone map[string]time.Duration
}

func newKeyspace() *keyspace {
	return &keyspace{nodes: map[string]bool{}, leases: map[string]simLease{}, incs: map[string]uint64{},
		sess: map[string]map[string]string{}, ctr: map[string]uint64{}, stream: map[string][]rawEntry{}, lapsed: map[string]time.Duration{}, gone: map[string]time.Duration{}}
}

// lease returns a node's lease at now, expiring it if its time is up.
func (k *keyspace) lease(id string, now time.Duration) (simLease, bool) {
	l, ok := k.leases[id]
	if ok && l.exp <= now {
		delete(k.leases, id)
		k.lapsed[id] = l.exp
		return simLease{}, false
	}
	return l, ok
}

func (k *keyspace) xadd(id string, kv []string) {
	k.ids++
	k.stream[id] = append(k.stream[id], rawEntry{id: "1-" + strconv.Itoa(k.ids), kv: kv})
	if s := k.stream[id]; len(s) > 200 { // MAXLEN ~
		k.stream[id] = s[len(s)-100:]
	}
}

func (k *keyspace) head(id string) string {
	if s := k.stream[id]; len(s) > 0 {
		return s[len(s)-1].id
	}
	return ""
}

// register is reserveScript and registerScript together.
func (k *keyspace) register(id string, prev uint64, set map[sessKey]presence.Meta, now time.Duration) (uint64, bool) {
	inc := max(k.incs[id]+1, uint64(now.Milliseconds())+1)
	k.incs[id] = inc
	if cur, ok := k.lease(id, now); ok && cur.inc != prev {
		return 0, false
	}
	k.leases[id] = simLease{inc: inc, exp: now + simTTL}
	if at, ok := k.gone[id]; ok {
		if now-at >= simTTL {
			k.lapsed[id] = at + simTTL
		}
		delete(k.gone, id)
	}
	h := map[string]string{}
	for s, m := range set {
		h[encodeField(s)] = encodeMeta(m)
	}
	k.sess[id] = h
	k.ctr[id] = 0
	k.xadd(id, []string{"i", strconv.FormatUint(inc, 10), "n", "0"})
	k.nodes[id] = true
	return inc, true
}

func (k *keyspace) renew(id string, inc uint64, now time.Duration) bool {
	l, ok := k.lease(id, now)
	if !ok || l.inc != inc {
		return false
	}
	k.leases[id] = simLease{inc: inc, exp: now + simTTL}
	k.nodes[id] = true
	return true
}

// write is writeScript: refused (false) unless the lease holds inc.
func (k *keyspace) write(id string, inc uint64, ops []op, now time.Duration) bool {
	if l, ok := k.lease(id, now); !ok || l.inc != inc {
		return false
	}
	k.ctr[id]++
	kv := []string{"i", strconv.FormatUint(inc, 10), "n", strconv.FormatUint(k.ctr[id], 10)}
	for _, o := range ops {
		f, v := encodeOp(o)
		kv = append(kv, f, v)
		if o.up {
			k.sess[id][f[1:]] = v
		} else {
			delete(k.sess[id], f[1:])
		}
	}
	k.xadd(id, kv)
	return true
}

// snapshot is snapScript's reply.
func (k *keyspace) snapshot(id string, now time.Duration) []string {
	l, ok := k.lease(id, now)
	ls := ""
	if ok {
		ls = strconv.FormatUint(l.inc, 10)
	}
	res := []string{ls, strconv.FormatUint(k.ctr[id], 10), k.head(id)}
	for _, f := range slices.Sorted(maps.Keys(k.sess[id])) {
		res = append(res, f, k.sess[id][f])
	}
	return res
}

// xrange is XRANGE stream (after + COUNT page.
func (k *keyspace) xrange(id, after string, page int) []rawEntry {
	s := k.stream[id]
	from := 0
	if after != "" {
		from = len(s) // an ID trimmed away: nothing after it that we can name
		for i, e := range s {
			if e.id == after {
				from = i + 1
				break
			}
		}
	}
	return slices.Clone(s[from:min(len(s), from+page)])
}

func (k *keyspace) reap(id string, now time.Duration) {
	if _, ok := k.lease(id, now); ok {
		return
	}
	delete(k.sess, id)
	delete(k.stream, id)
	delete(k.ctr, id)
	delete(k.nodes, id)
}

// wipe: Redis restarts empty. The incarnation floor survives only as the
// wall clock, which register uses; the next epoch differs from every
// earlier one, as a random one does.
func (k *keyspace) wipe(now time.Duration) {
	lapsed, gone, epochs, ids := k.lapsed, k.gone, k.epochs, k.ids
	for id := range k.leases {
		if _, ok := k.lease(id, now); ok {
			gone[id] = now
		}
	}
	*k = *newKeyspace()
	k.lapsed, k.gone, k.epochs, k.ids = lapsed, gone, epochs, ids
}
