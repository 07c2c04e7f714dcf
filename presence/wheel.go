package presence

import (
	"math/bits"
	"time"
)

// wheel is a hashed timing wheel holding one deadline per connection: slots
// of res each, wheelSlots of them; a deadline further than a lap away sits
// in its slot and is passed over until its lap comes. Entries are the
// connections themselves (intrusive links), so scheduling allocates nothing.
// Not safe for concurrent use: its shard's lock guards it.
type wheel struct {
	res    int64 // slot width, ns
	origin time.Time
	cursor int64 // the last tick processed
	slots  [wheelSlots]*conn
	used   [wheelSlots / 64]uint64 // bit i: slot i is not empty
	n      int
}

const wheelSlots = 4096 // with 10 ms slots, one lap is 41 s

func newWheel(origin time.Time, res time.Duration) *wheel {
	return &wheel{res: int64(res), origin: origin}
}

// ns returns t as nanoseconds since the wheel's origin.
func (w *wheel) ns(t time.Time) int64 { return t.Sub(w.origin).Nanoseconds() }

// schedule puts c in at its deadline due, first taking it out of wherever
// it was. A zero due takes it out only.
func (w *wheel) schedule(c *conn, due time.Time) {
	w.remove(c)
	if due.IsZero() {
		return
	}
	c.due = w.ns(due)
	t := (c.due + w.res - 1) / w.res // the first tick at or after due
	t = max(t, w.cursor+1)
	s := int32(t & (wheelSlots - 1))
	c.slot = s
	c.next = w.slots[s]
	if c.next != nil {
		c.next.prev = c
	}
	c.prev = nil
	w.slots[s] = c
	w.used[s/64] |= 1 << (s % 64)
	w.n++
}

func (w *wheel) remove(c *conn) {
	if c.slot < 0 {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		w.slots[c.slot] = c.next
		if c.next == nil {
			w.used[c.slot/64] &^= 1 << (c.slot % 64)
		}
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.next, c.prev, c.slot = nil, nil, -1
	w.n--
}

// due appends to out every connection whose deadline is at or before now,
// taking them out, and moves the cursor to now.
func (w *wheel) expire(now time.Time, out []*conn) []*conn {
	nowNs := w.ns(now)
	end := nowNs / w.res
	if end <= w.cursor {
		return out
	}
	from := w.cursor + 1
	if end-from >= wheelSlots {
		from = end - wheelSlots + 1 // every slot once
	}
	for t := from; t <= end; {
		s := t & (wheelSlots - 1)
		// skip to the next used slot within this pass
		next, ok := w.nextUsed(s, end-t)
		if !ok {
			break
		}
		t += next
		s = t & (wheelSlots - 1)
		for c := w.slots[s]; c != nil; {
			nc := c.next
			if c.due <= nowNs {
				w.remove(c)
				out = append(out, c)
			}
			c = nc
		}
		t++
	}
	w.cursor = end
	return out
}

// nextUsed returns the distance from slot s to the first used slot at or
// after it, if it is within limit.
func (w *wheel) nextUsed(s, limit int64) (int64, bool) {
	for d := int64(0); d <= limit; {
		i := (s + d) & (wheelSlots - 1)
		word := w.used[i/64] >> (i % 64)
		if word != 0 {
			d += int64(bits.TrailingZeros64(word))
			return d, d <= limit
		}
		d += 64 - i%64
	}
	return 0, false
}

// next returns the earliest time (ns since the origin) the wheel may have
// work: the start of the first used slot after the cursor; false if it is
// empty.
func (w *wheel) next() (int64, bool) {
	if w.n == 0 {
		return 0, false
	}
	d, ok := w.nextUsed((w.cursor+1)&(wheelSlots-1), wheelSlots-1)
	if !ok {
		return 0, false
	}
	return (w.cursor + 1 + d) * w.res, true
}
