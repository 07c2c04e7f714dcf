package cluster

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
)

// view is one node's picture of the cluster, sans I/O: which sessions each
// node asserts, and from that, which sessions and users are online. It
// turns changes of any node's set into presence events: a session is online
// while at least one node asserts it, a user while one of their sessions
// is. Every change of a node's set is a state, not a delta, so applying one
// twice changes nothing and emits nothing: that is what makes each event
// happen once however often a change is read (a replayed stream entry, a
// resync after a gap, a node re-registering the same sessions).
type view struct {
	seq   uint64
	nodes map[string]map[sessKey]presence.Meta
	sess  map[sessKey]*agg
	users map[string]int // sessions online per user
}

type agg struct {
	holders int // nodes asserting it
	meta    presence.Meta
}

func newView() *view {
	return &view{nodes: map[string]map[sessKey]presence.Meta{}, sess: map[sessKey]*agg{}, users: map[string]int{}}
}

func (v *view) emit(out []presence.Event, e presence.Event) []presence.Event {
	v.seq++
	e.Seq = v.seq
	return append(out, e)
}

// up: node asserts session k with metadata m.
func (v *view) up(node string, k sessKey, m presence.Meta, now time.Time, out []presence.Event) []presence.Event {
	ns := v.nodes[node]
	if ns == nil {
		ns = map[sessKey]presence.Meta{}
		v.nodes[node] = ns
	}
	_, had := ns[k]
	ns[k] = m
	a := v.sess[k]
	if a == nil {
		v.sess[k] = &agg{holders: 1, meta: m}
		if v.users[k.user] == 0 {
			out = v.emit(out, presence.Event{Kind: presence.UserJoined, At: now, User: k.user})
		}
		v.users[k.user]++
		return v.emit(out, presence.Event{Kind: presence.SessionJoined, At: now, User: k.user, Session: k.session, Meta: m})
	}
	if !had {
		a.holders++
	}
	if !maps.Equal(a.meta, m) {
		a.meta = m
		out = v.emit(out, presence.Event{Kind: presence.SessionUpdated, At: now, User: k.user, Session: k.session, Meta: m})
	}
	return out
}

// down: node no longer asserts session k.
func (v *view) down(node string, k sessKey, why presence.LeaveReason, now time.Time, out []presence.Event) []presence.Event {
	ns := v.nodes[node]
	if _, ok := ns[k]; !ok {
		return out
	}
	delete(ns, k)
	a := v.sess[k]
	if a.holders--; a.holders > 0 {
		return out
	}
	delete(v.sess, k)
	out = v.emit(out, presence.Event{Kind: presence.SessionLeft, At: now, User: k.user, Session: k.session, Reason: why})
	if v.users[k.user]--; v.users[k.user] > 0 {
		return out
	}
	delete(v.users, k.user)
	return v.emit(out, presence.Event{Kind: presence.UserLeft, At: now, User: k.user, Reason: why})
}

// replace sets node's whole set (nil: the node is gone); what it no longer
// asserts leaves as expired.
func (v *view) replace(node string, set map[sessKey]presence.Meta, now time.Time, out []presence.Event) []presence.Event {
	keys := make([]sessKey, 0, len(v.nodes[node]))
	for k := range v.nodes[node] {
		if _, ok := set[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, cmpKey) // events in a reproducible order
	for _, k := range keys {
		out = v.down(node, k, presence.LeaveExpired, now, out)
	}
	keys = keys[:0]
	for k := range set {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpKey)
	for _, k := range keys {
		out = v.up(node, k, set[k], now, out)
	}
	if set == nil {
		delete(v.nodes, node)
	}
	return out
}

func cmpKey(a, b sessKey) int {
	if c := strings.Compare(a.user, b.user); c != 0 {
		return c
	}
	return strings.Compare(a.session, b.session)
}

// snapshot is the view as a presence.Snapshot. SessionInfo.Conns counts the
// nodes asserting the session.
func (v *view) snapshot() presence.Snapshot {
	by := map[string][]presence.SessionInfo{}
	for k, a := range v.sess {
		by[k.user] = append(by[k.user], presence.SessionInfo{Session: k.session, Meta: a.meta, Conns: a.holders})
	}
	snap := presence.Snapshot{Seq: v.seq, Users: make([]presence.UserInfo, 0, len(by))}
	for u, ss := range by {
		slices.SortFunc(ss, func(a, b presence.SessionInfo) int { return strings.Compare(a.Session, b.Session) })
		snap.Users = append(snap.Users, presence.UserInfo{User: u, Sessions: ss})
	}
	slices.SortFunc(snap.Users, func(a, b presence.UserInfo) int { return strings.Compare(a.User, b.User) })
	return snap
}
