package cluster

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
	"pgregory.net/rapid"
)

// The view, fed any sequence of node states, emits events that replay to
// exactly its online set (the union of the nodes' sets), never a join of
// an online session or a leave of an offline one, and nothing at all when
// a state is applied twice.
func TestViewEventsFollowStates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := newView()
		nodes := []string{"a", "b", "c"}
		keys := []sessKey{{"ann", "1"}, {"ann", "2"}, {"bob", "1"}, {"cy", "1"}}
		metas := []presence.Meta{nil, {"d": "web"}}
		truth := map[string]map[sessKey]presence.Meta{}
		online := map[sessKey]bool{}
		users := map[string]int{}
		var seq uint64
		now := time.Unix(0, 0)
		replay := func(evs []presence.Event) {
			for _, e := range evs {
				if e.Seq != seq+1 {
					t.Fatalf("seq %d after %d", e.Seq, seq)
				}
				seq = e.Seq
				k := sessKey{e.User, e.Session}
				switch e.Kind {
				case presence.UserJoined:
					if users[e.User] != 0 {
						t.Fatalf("%v: user online", e)
					}
				case presence.SessionJoined:
					if online[k] {
						t.Fatalf("%v: already online", e)
					}
					online[k] = true
					users[e.User]++
				case presence.SessionLeft:
					if !online[k] {
						t.Fatalf("%v: not online", e)
					}
					delete(online, k)
					users[e.User]--
				case presence.UserLeft:
					if users[e.User] != 0 {
						t.Fatalf("%v: sessions online", e)
					}
					delete(users, e.User)
				}
			}
		}
		for i := range rapid.IntRange(1, 60).Draw(t, "steps") {
			n := rapid.SampledFrom(nodes).Draw(t, "node")
			apply := func() []presence.Event { return nil }
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				k, m := rapid.SampledFrom(keys).Draw(t, "key"), rapid.SampledFrom(metas).Draw(t, "meta")
				apply = func() []presence.Event { return v.up(n, k, m, now, nil) }
				if truth[n] == nil {
					truth[n] = map[sessKey]presence.Meta{}
				}
				truth[n][k] = m
			case 1:
				k := rapid.SampledFrom(keys).Draw(t, "key")
				apply = func() []presence.Event { return v.down(n, k, presence.LeaveClosed, now, nil) }
				delete(truth[n], k)
			case 2:
				set := map[sessKey]presence.Meta{}
				for _, k := range keys {
					if rapid.Bool().Draw(t, "in") {
						set[k] = rapid.SampledFrom(metas).Draw(t, "meta")
					}
				}
				apply = func() []presence.Event { return v.replace(n, set, now, nil) }
				truth[n] = maps.Clone(set)
			case 3:
				apply = func() []presence.Event { return v.replace(n, nil, now, nil) }
				delete(truth, n)
			}
			replay(apply())
			if again := apply(); len(again) != 0 {
				t.Fatalf("step %d applied twice: %v", i, again)
			}
			want := map[sessKey]bool{}
			for _, set := range truth {
				for k := range set {
					want[k] = true
				}
			}
			if !maps.Equal(online, want) {
				t.Fatalf("step %d: events say %v, the nodes' sets %v", i, online, want)
			}
			got := snapKeys(v.snapshot())
			var w []string
			for k := range want {
				w = append(w, k.user+"/"+k.session)
			}
			slices.Sort(w)
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Fatalf("step %d: snapshot %v, want %v", i, got, w)
			}
		}
	})
}
