package sim

import (
	"testing"

	"pgregory.net/rapid"
)

// TestQueueOrder: the calendar queue hands out events in exactly the order
// of one heap keyed by (time, push order), whatever the mix of delays —
// ties, the current bucket, the wheel, beyond the wheel, far beyond — and
// however often the wheel turns over.
func TestQueueOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var q queue
		q.init(rapid.IntRange(1, 5000).Draw(t, "conns"))
		var ref heap4
		bucket := int64(1) << q.shift
		page := bucket << fineLog
		span := page << coarseLog
		delay := rapid.OneOf(
			rapid.Just(int64(0)),
			rapid.Int64Range(0, 3),
			rapid.Int64Range(0, 2*bucket),
			rapid.Int64Range(0, 2*page),
			rapid.Int64Range(page-2*bucket, page+2*bucket),
			rapid.Int64Range(0, span),
			rapid.Int64Range(span-2*page, span+2*page),
			rapid.Int64Range(0, 50*span),
		)
		now, id := int64(0), uint32(0)
		for range rapid.IntRange(1, 400).Draw(t, "steps") {
			if rapid.IntRange(0, 2).Draw(t, "op") > 0 {
				for range rapid.IntRange(1, 4).Draw(t, "burst") {
					id++
					e := event{at: now + delay.Draw(t, "delay"), aux: id}
					q.push(e)
					ref.push(e)
				}
				continue
			}
			p := q.peek()
			if p == nil {
				if ref.len() != 0 {
					t.Fatalf("queue empty, reference holds %d", ref.len())
				}
				continue
			}
			e, want := q.pop(), ref.pop()
			if e.at != want.at || e.aux != want.aux {
				t.Fatalf("popped event %d at %d, want %d at %d", e.aux, e.at, want.aux, want.at)
			}
			now = e.at
		}
		n := 0
		q.each(func(*event) { n++ })
		if n != ref.len() || q.len() != ref.len() {
			t.Fatalf("queue holds %d (each) / %d (len), reference %d", n, q.len(), ref.len())
		}
		for ref.len() > 0 {
			if q.peek() == nil {
				t.Fatalf("queue empty, reference holds %d", ref.len())
			}
			e, want := q.pop(), ref.pop()
			if e.at != want.at || e.aux != want.aux {
				t.Fatalf("draining: popped event %d at %d, want %d at %d", e.aux, e.at, want.aux, want.at)
			}
		}
		if q.peek() != nil {
			t.Fatal("queue not empty after the reference drained")
		}
	})
}
