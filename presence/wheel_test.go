package presence

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestWheelMatchesModel: after random schedules, removals and expiries,
// expire returns exactly the entries whose slot has come (the first slot
// boundary at or after their deadline), each once, and next is never later
// than the earliest of them.
func TestWheelMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const res = 10 * time.Millisecond
		origin := time.Unix(1_700_000_000, 0)
		w := newWheel(origin, res)
		conns := make([]*conn, 20)
		for i := range conns {
			conns[i] = &conn{slot: -1, index: int32(i)}
		}
		// The model: each entry's slot, the first boundary at or after its
		// deadline but after the last slot processed (a deadline already
		// past goes to the next slot).
		due := map[*conn]time.Time{} // entry → when its slot comes
		now := origin
		var processed time.Duration // the start of the last slot processed
		fireAt := func(d time.Time) time.Time {
			n := d.Sub(origin)
			return origin.Add(max((n+res-1)/res*res, processed+res))
		}
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			c := conns[rapid.IntRange(0, len(conns)-1).Draw(t, "conn")]
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1: // (re)schedule, up to two laps ahead
				d := now.Add(time.Duration(rapid.Int64Range(0, int64(2*wheelSlots)*int64(res)).Draw(t, "in")))
				w.schedule(c, d)
				due[c] = fireAt(d)
			case 2:
				w.remove(c)
				delete(due, c)
			case 3: // time passes, sometimes exactly to the wheel's next slot
				if next, ok := w.next(); ok && rapid.Bool().Draw(t, "to next") {
					now = origin.Add(time.Duration(next))
				} else {
					now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*wheelSlots)*int64(res)).Draw(t, "advance")))
				}
				got := w.expire(now, nil)
				processed = max(processed, now.Sub(origin)/res*res)
				var want []*conn
				for c, f := range due {
					if !f.After(now) {
						want = append(want, c)
						delete(due, c)
					}
				}
				byIndex := func(a, b *conn) int { return int(a.index - b.index) }
				slices.SortFunc(got, byIndex)
				slices.SortFunc(want, byIndex)
				if !slices.Equal(got, want) {
					t.Fatalf("at %v: expired %d entries, want %d", now.Sub(origin), len(got), len(want))
				}
			}
			if w.n != len(due) {
				t.Fatalf("wheel holds %d, model %d", w.n, len(due))
			}
			var soonest time.Time
			for _, f := range due {
				if soonest.IsZero() || f.Before(soonest) {
					soonest = f
				}
			}
			if next, ok := w.next(); ok != !soonest.IsZero() || (ok && origin.Add(time.Duration(next)).After(soonest)) {
				t.Fatalf("next %v (%v), earliest due slot %v", time.Duration(next), ok, soonest.Sub(origin))
			}
		}
	})
}
