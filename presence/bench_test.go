package presence

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
)

var (
	idleConns = flag.Int("hub.conns", 100_000, "BenchmarkHubIdle: connections")
	idleFor   = flag.Duration("hub.for", time.Minute, "BenchmarkHubIdle: measured run after a warm-up of one ping interval")
)

// echoConn is an in-memory peer: it answers every ping with a pong at once,
// on the writer's goroutine, as a client on a fast link would.
type echoConn struct {
	ev    transport.Events
	sent  chan struct{} // if set, signalled after every pong (not the hub's own pings, which nobody awaits)
	pings *pingClock    // if set, counts pings by 100 ms slot
}

func (c *echoConn) Bind(ev transport.Events) error { c.ev = ev; return nil }
func (c *echoConn) Close(error) error              { return nil }
func (c *echoConn) Send(_ context.Context, f transport.Frame) error {
	return c.SendBy(time.Time{}, f)
}
func (c *echoConn) SendBy(_ time.Time, f transport.Frame) error {
	if f.Kind == transport.Ping {
		if c.pings != nil {
			c.pings.tick()
		}
		c.ev.Frame(transport.Frame{Kind: transport.Pong, Seq: f.Seq})
	}
	if c.sent != nil && f.Kind == transport.Pong {
		c.sent <- struct{}{}
	}
	return nil
}

// pingClock counts pings in 100 ms slots from its start.
type pingClock struct {
	start time.Time
	slots []atomic.Int64
}

func (p *pingClock) tick() {
	if i := int(time.Since(p.start) / (100 * time.Millisecond)); i >= 0 && i < len(p.slots) {
		p.slots[i].Add(1)
	}
}

// heapNow returns the live heap after a full collection.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkHubMemory reports the heap the hub holds per connection: the
// Machine, the default server policies, the hub's entry and the registry's
// (each connection its own user and session, alive), after GC.
//
//	go test ./presence -run '^$' -bench HubMemory -benchtime 1x
func BenchmarkHubMemory(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint("conns=", n), func(b *testing.B) {
			for b.Loop() {
				conns := make([]echoConn, n)
				ids := make([]string, n)
				users := make([]string, n)
				for i := range n {
					ids[i], users[i] = fmt.Sprint("c", i), fmt.Sprint("u", i)
				}
				h, err := NewHub(HubConfig{})
				if err != nil {
					b.Fatal(err)
				}
				before := heapNow()
				for i := range conns {
					if _, err := h.Watch(&conns[i], ids[i], Identity{User: users[i], Session: "s"}); err != nil {
						b.Fatal(err)
					}
					conns[i].ev.Frame(transport.Frame{Kind: transport.Ping, Seq: 1}) // alive: in the registry
				}
				if st := h.Stats(); st.Users != n {
					b.Fatalf("%d users online, want %d", st.Users, n)
				}
				h.waitDelivered() // the join events are not the hub's state
				after := heapNow()
				b.ReportMetric(float64(after-before)/float64(n), "B/conn")
				b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
				_ = h.Shutdown(context.Background())
				runtime.KeepAlive(conns)
			}
		})
	}
}

// BenchmarkRegistryMemory reports the registry's share: one connection,
// session and user per entry.
//
//	go test ./presence -run '^$' -bench RegistryMemory -benchtime 1x
func BenchmarkRegistryMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		ids, users := make([]string, n), make([]string, n)
		for i := range n {
			ids[i], users[i] = fmt.Sprint("c", i), fmt.Sprint("u", i)
		}
		reg, _ := NewRegistry(RegistryConfig{})
		before := heapNow()
		now := time.Now()
		var evs []Event
		for i := range n {
			evs = reg.Step(now, RegistryInput{Kind: ConnAlive, Conn: ids[i], User: users[i], Session: "s"}, evs[:0])
		}
		after := heapNow()
		b.ReportMetric(float64(after-before)/n, "B/conn")
		runtime.KeepAlive(reg)
	}
}

// BenchmarkHubPingPong is the steady heartbeat on the in-memory path: the
// client's ping steps the Machine on the reader's goroutine, the pong is
// queued and written by a shard writer.
//
//	go test ./presence -run '^$' -bench HubPingPong -benchmem
func BenchmarkHubPingPong(b *testing.B) {
	h, c := pingPongHub(b)
	defer h.Shutdown(context.Background())
	b.ReportAllocs()
	seq := uint64(1)
	for b.Loop() {
		seq++
		c.ev.Frame(transport.Frame{Kind: transport.Ping, Seq: seq})
		<-c.sent
	}
}

func pingPongHub(tb testing.TB) (*Hub, *echoConn) {
	// Pings come back to back here: the flood meter would (rightly) close
	// the connection, so it is off. The hub pings only after an hour: a
	// ping of its own in flight would (rightly) hold back the pong the
	// loop waits for, as one write per connection is the rule.
	h, err := NewHub(HubConfig{Shards: 1, Machine: fsm.Config{PingBurst: -1}, Policies: func() policy.Set {
		return policy.Set{Detector: &policy.Fixed{SuspectAfter: 2 * time.Hour, DeadAfter: 3 * time.Hour}, Interval: &policy.Idle{Every: time.Hour}}
	}})
	if err != nil {
		tb.Fatal(err)
	}
	c := &echoConn{sent: make(chan struct{}, 1)}
	if _, err := h.Watch(c, "c1", Identity{User: "u", Session: "s"}); err != nil {
		tb.Fatal(err)
	}
	c.ev.Frame(transport.Frame{Kind: transport.Ping, Seq: 1})
	<-c.sent
	return h, c
}

func TestHubPingPongDoesNotAllocate(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	h, c := pingPongHub(t)
	defer h.Shutdown(context.Background())
	seq := uint64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		c.ev.Frame(transport.Frame{Kind: transport.Ping, Seq: seq})
		<-c.sent
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per ping/pong cycle, want 0", allocs)
	}
}

// BenchmarkHubIdle holds -hub.conns idle in-memory connections whose
// server pings every 25 s (Socket.IO's interval), connected all at once,
// and measures over -hub.for, after one interval of warm-up: how late the
// hub's deadlines fire (p99, from HubStats.Lateness's buckets), the
// process's CPU per core, and how evenly the pings spread over 100 ms
// slots (the busiest slot over the average).
//
//	go test ./presence -run '^$' -bench HubIdle -benchtime 1x -hub.conns 100000 -hub.for 1m
func BenchmarkHubIdle(b *testing.B) {
	const every = 25 * time.Second
	for b.Loop() {
		n := *idleConns
		h, err := NewHub(HubConfig{Policies: func() policy.Set {
			return policy.Set{Detector: &policy.Fixed{SuspectAfter: every + 5*time.Second, DeadAfter: every + 20*time.Second}, Interval: &policy.Idle{Every: every}}
		}})
		if err != nil {
			b.Fatal(err)
		}
		pc := &pingClock{slots: make([]atomic.Int64, int((every+*idleFor)/(100*time.Millisecond))+1)}
		conns := make([]echoConn, n)
		for i := range conns {
			conns[i].pings = pc
		}
		pc.start = time.Now()
		for i := range conns {
			if _, err := h.Watch(&conns[i], h.NewConnID(), Identity{User: fmt.Sprint("u", i), Session: "s"}); err != nil {
				b.Fatal(err)
			}
			conns[i].ev.Frame(transport.Frame{Kind: transport.Ping, Seq: 1})
		}
		warm := time.NewTimer(time.Until(pc.start.Add(every)))
		<-warm.C
		st0, cpu0, t0 := h.Stats(), cpuTime(), time.Now()
		done := time.NewTimer(*idleFor)
		<-done.C
		st1, cpu1, t1 := h.Stats(), cpuTime(), time.Now()
		var late [len(LatenessBuckets) + 1]uint64
		var total uint64
		for i := range late {
			late[i] = st1.Lateness[i] - st0.Lateness[i]
			total += late[i]
		}
		p99 := time.Duration(-1)
		var cum uint64
		for i, c := range late {
			cum += c
			if cum*100 >= total*99 {
				if i < len(LatenessBuckets) {
					p99 = LatenessBuckets[i]
				}
				break
			}
		}
		from, to := int(every/(100*time.Millisecond)), len(pc.slots)-1
		var counts []int64
		for i := from; i < to; i++ {
			counts = append(counts, pc.slots[i].Load())
		}
		var sum int64
		for _, c := range counts {
			sum += c
		}
		avg := float64(sum) / float64(len(counts))
		b.ReportMetric(float64(p99)/float64(time.Millisecond), "p99-late-ms(bucket-bound)")
		b.ReportMetric(100*float64(cpu1-cpu0)/float64(t1.Sub(t0)), "%cpu")
		b.ReportMetric(float64(slices.Max(counts))/avg, "busiest-100ms/avg")
		b.ReportMetric(float64(total)/t1.Sub(t0).Seconds(), "deadlines/s")
		b.ReportMetric(float64(st1.WriteQueuePeak), "write-queue-peak")
		if st1.Conns != n {
			b.Errorf("%d of %d connections left: false verdicts on an idle in-memory link", n-st1.Conns, n)
		}
		_ = h.Shutdown(context.Background())
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
