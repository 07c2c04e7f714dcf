package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

// memConn adapts a mem.Conn end to the hub's Conn.
type memConn struct{ *mem.Conn }

func (c memConn) Bind(ev transport.Events) error { c.Conn.Bind(ev); return nil }

// recorder collects presence events.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) add(e Event) { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.evs
	r.evs = nil
	return evs
}

func kinds(evs []Event) string {
	s := ""
	for _, e := range evs {
		if s != "" {
			s += ", "
		}
		s += e.Kind.String() + " " + e.User
		if e.Kind != UserJoined && e.Kind != UserLeft {
			s += "/" + e.Session
		}
	}
	return s
}

// client is a default client (fsm.Run) whose every dial makes a new
// in-memory connection that the hub watches as user/session.
type client struct {
	d       *fsm.Driver
	mu      sync.Mutex
	ends    []*mem.Conn // client ends, newest last
	watched []*Watched  // the hub's handles, newest last
}

func dialHub(t *testing.T, h *Hub, user, session string) *client {
	t.Helper()
	c := &client{}
	d, err := fsm.Run(context.Background(), fsm.DriverConfig{
		Dialer: transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
			a, b := mem.Pipe(nil)
			a.Bind(ev)
			w, err := h.Watch(memConn{b}, h.NewConnID(), Identity{User: user, Session: session})
			if err != nil {
				_ = a.Close(err)
				return nil, err
			}
			c.mu.Lock()
			c.ends = append(c.ends, a)
			c.watched = append(c.watched, w)
			c.mu.Unlock()
			return a, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.d = d
	return c
}

func (c *client) dials() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ends)
}

func (c *client) last() *mem.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ends[len(c.ends)-1]
}

// settled starts a hub and one client of user/session, lets it run for d
// and drops the events so far (inside a synctest bubble).
func settled(t *testing.T, cfg HubConfig, user, session string, d time.Duration) (*Hub, *recorder, *client) {
	t.Helper()
	h, rec := newTestHub(t, cfg)
	c := dialHub(t, h, user, session)
	time.Sleep(d)
	synctest.Wait()
	rec.take()
	return h, rec, c
}

// waitRedialed waits until the client is alive on a connection newer than
// old.
func (c *client) waitRedialed(old *mem.Conn) {
	for c.last() == old || c.d.State() != fsm.Alive {
		time.Sleep(100 * time.Millisecond)
	}
}

func newTestHub(t *testing.T, cfg HubConfig) (*Hub, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.OnEvent = rec.add
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, rec
}

func shutdown(t *testing.T, h *Hub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestHubJoinStayLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec := newTestHub(t, HubConfig{})
		c := dialHub(t, h, "ann", "tab-1")
		synctest.Wait()
		if got := kinds(rec.take()); got != "user joined ann, session joined ann/tab-1" {
			t.Fatalf("after connecting: %s", got)
		}
		// An hour of healthy heartbeats: no event, still online.
		time.Sleep(time.Hour)
		synctest.Wait()
		if evs := rec.take(); len(evs) != 0 || !h.Online("ann") {
			t.Fatalf("a healthy hour: events %s, online %v", kinds(evs), h.Online("ann"))
		}
		// The client goes silent for good: the hub convicts it, and the
		// session leaves one resume window later.
		c.last().SetDrop(true)
		c.d.Close()
		lost := time.Now()
		for h.Online("ann") && time.Since(lost) < 10*time.Minute {
			time.Sleep(100 * time.Millisecond)
		}
		evs := rec.take()
		if got := kinds(evs); got != "session left ann/tab-1, user left ann" {
			t.Fatalf("after the client vanished: %s", got)
		}
		if evs[0].Reason != LeaveExpired {
			t.Errorf("leave reason %v, want expired", evs[0].Reason)
		}
		took := evs[0].At.Sub(lost)
		// Detection (the default detector: well under 30 s here) plus the
		// derived resume window (MinResumeWindow for one connection).
		if took < MinResumeWindow || took > MinResumeWindow+30*time.Second {
			t.Errorf("leave came %v after the client vanished", took)
		}
		t.Logf("leave %v after the client vanished", took)
		shutdown(t, h)
	})
}

func TestHubReconnectOvertakingOldConnIsNoFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec, c := settled(t, HubConfig{}, "ann", "tab-1", time.Minute)
		// The old link is cut silently both ways (a network change): the
		// client convicts it and redials, whichever side notices first.
		old := c.last()
		old.Cut()
		c.waitRedialed(old)
		// Long past the old connection's conviction and its window.
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if evs := rec.take(); len(evs) != 0 || !h.Online("ann") {
			t.Fatalf("a reconnect overtaking the old connection: events %s, online %v", kinds(evs), h.Online("ann"))
		}
		if st := h.Stats(); st.Conns != 1 {
			t.Errorf("hub holds %d connections, want 1 (the old one convicted)", st.Conns)
		}
		c.d.Close()
		shutdown(t, h)
	})
}

func TestHubTabsJoinAndLeaveOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec := newTestHub(t, HubConfig{})
		var cs []*client
		for i := range 3 {
			cs = append(cs, dialHub(t, h, "ann", fmt.Sprint("tab-", i)))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		joins := 0
		for _, e := range rec.take() {
			if e.Kind == UserJoined {
				joins++
			}
		}
		for _, c := range cs {
			c.d.Close() // a clean close: each session leaves at once
		}
		synctest.Wait()
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		evs := rec.take()
		leaves := 0
		for _, e := range evs {
			if e.Kind == UserLeft {
				leaves++
			}
		}
		if joins != 1 || leaves != 1 || len(evs) != 4 {
			t.Fatalf("3 tabs: %d user joins, %d user leaves, events after close: %s", joins, leaves, kinds(evs))
		}
		shutdown(t, h)
	})
}

func TestHubExplicitCloseIsALeaveWithin100ms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec, c := settled(t, HubConfig{}, "bob", "phone", time.Second)
		start := time.Now()
		c.d.Close()
		synctest.Wait()
		evs := rec.take()
		if got := kinds(evs); got != "session left bob/phone, user left bob" {
			t.Fatalf("after a clean close: %s", got)
		}
		if d := evs[1].At.Sub(start); d > 100*time.Millisecond {
			t.Errorf("leave %v after the close", d)
		}
		shutdown(t, h)
	})
}

func TestHubShutdownClosesAllAndDeliversLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec := newTestHub(t, HubConfig{})
		var cs []*client
		for i := range 20 {
			cs = append(cs, dialHub(t, h, fmt.Sprint("u", i), "s"))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		rec.take()
		shutdown(t, h)
		leaves := 0
		for _, e := range rec.take() {
			if e.Kind == UserLeft {
				leaves++
			}
		}
		if leaves != 20 {
			t.Fatalf("shutdown delivered %d user leaves, want 20", leaves)
		}
		_, b := mem.Pipe(nil)
		if _, err := h.Watch(memConn{b}, "x", Identity{}); err != ErrHubClosed {
			t.Errorf("Watch after shutdown: %v, want ErrHubClosed", err)
		}
		for _, c := range cs {
			c.d.Close()
		}
	})
}

func TestHubServerConvictsFirstClientResumes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		flap   bool
	}{
		{"derived window", 0, false},
		{"no window", time.Nanosecond, true}, // what a per-connection presence does
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, rec := newTestHub(t, HubConfig{ResumeWindow: tc.window})
				c := dialHub(t, h, "ann", "tab-1")
				time.Sleep(time.Minute)
				synctest.Wait()
				rec.take()
				// The client's frames stop reaching the server; the server's
				// still reach the client. The server convicts and closes;
				// the client hears the close and redials.
				old := c.last()
				old.SetDrop(true)
				c.waitRedialed(old)
				time.Sleep(5 * time.Minute)
				synctest.Wait()
				evs := rec.take()
				if flapped := len(evs) > 0; flapped != tc.flap {
					t.Fatalf("events %q; want a flap: %v", kinds(evs), tc.flap)
				}
				if !h.Online("ann") {
					t.Fatal("ann offline with a live connection")
				}
				c.d.Close()
				shutdown(t, h)
			})
		})
	}
}

func TestHubDrainResumesKickLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec, c := settled(t, HubConfig{}, "ann", "tab-1", time.Minute)
		c.mu.Lock()
		w := c.watched[0]
		c.mu.Unlock()
		w.Drain() // the client hears 1001 and redials: the session resumes
		for c.d.State() != fsm.Alive || c.dials() < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if evs := rec.take(); len(evs) != 0 || !h.Online("ann") {
			t.Fatalf("after a drain: events %s, online %v", kinds(evs), h.Online("ann"))
		}
		c.mu.Lock()
		w = c.watched[1]
		c.mu.Unlock()
		w.Close() // a kick: the session leaves at once
		synctest.Wait()
		if got := kinds(rec.take()); got != "session left ann/tab-1, user left ann" {
			t.Fatalf("after a kick: %s", got)
		}
		c.d.Close()
		shutdown(t, h)
	})
}

// TestHubWatchRacingShutdown: a connection whose Watch began before the
// shutdown and reached its shard after it is refused and closed, not left
// running unwatched by a stopped hub.
func TestHubWatchRacingShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newTestHub(t, HubConfig{})
		testHookWatch = func() { shutdown(t, h) }
		defer func() { testHookWatch = nil }()
		a, b := mem.Pipe(nil)
		a.Bind(clientEvents{})
		if _, err := h.Watch(memConn{b}, "late", Identity{User: "u", Session: "s"}); err != ErrHubClosed {
			t.Errorf("Watch racing Shutdown: %v, want ErrHubClosed", err)
		}
		synctest.Wait()
		if st := h.Stats(); st.Conns != 0 {
			t.Fatalf("%d connections watched by a hub that has shut down", st.Conns)
		}
		_ = a.Close(nil)
	})
}

// TestHubRefusesEmptyIdentity: Watch refuses a connection without a user
// or a session with ErrIdentity, and closes it.
func TestHubRefusesEmptyIdentity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := newTestHub(t, HubConfig{})
		for _, id := range []Identity{{User: "u"}, {Session: "s"}, {}} {
			a, b := mem.Pipe(nil)
			a.Bind(clientEvents{})
			if _, err := h.Watch(memConn{b}, "c", id); !errors.Is(err, ErrIdentity) {
				t.Errorf("Watch(%+v): %v, want ErrIdentity", id, err)
			}
			synctest.Wait()
			if st := h.Stats(); st.Conns != 0 {
				t.Fatalf("Watch(%+v): %d connections watched", id, st.Conns)
			}
			_ = a.Close(nil)
		}
		shutdown(t, h)
	})
}

// TestHubShutdownWithNothingToDrain: a hub with no connection — fresh, or
// after its last one ended cleanly — shuts down without waiting on any
// timer (in the bubble, no fake time passes).
func TestHubShutdownWithNothingToDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fresh, _ := newTestHub(t, HubConfig{})
		start := time.Now()
		shutdown(t, fresh)
		if took := time.Since(start); took != 0 {
			t.Errorf("fresh hub: Shutdown took %v", took)
		}

		h, rec := newTestHub(t, HubConfig{})
		c := dialHub(t, h, "ann", "tab-1")
		synctest.Wait()
		c.d.Close() // a clean close: the session leaves at once
		synctest.Wait()
		if got := kinds(rec.take()); got != "user joined ann, session joined ann/tab-1, session left ann/tab-1, user left ann" {
			t.Fatalf("before the shutdown: %s", got)
		}
		start = time.Now()
		shutdown(t, h)
		if took := time.Since(start); took != 0 {
			t.Errorf("hub whose last connection ended: Shutdown took %v", took)
		}
	})
}

// clientEvents is a client end that ignores what arrives.
type clientEvents struct{}

func (clientEvents) Frame(transport.Frame) {}
func (clientEvents) Closed(error)          {}

// TestHubShutdownEndsLingeringSessions: a session whose connection was lost
// and is waiting out its resume window leaves at shutdown, with the others:
// the hub's registry ends with it, so no one may be left online.
func TestHubShutdownEndsLingeringSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, rec, c := settled(t, HubConfig{}, "ann", "tab-1", time.Minute)
		c.mu.Lock()
		w := c.watched[0]
		c.mu.Unlock()
		w.Drain() // lost: the session lingers for the resume window
		c.d.Close()
		synctest.Wait()
		if evs := rec.take(); len(evs) != 0 || !h.Online("ann") {
			t.Fatalf("after a drain: events %s, online %v", kinds(evs), h.Online("ann"))
		}
		shutdown(t, h)
		evs := rec.take()
		if got := kinds(evs); got != "session left ann/tab-1, user left ann" {
			t.Fatalf("shutdown delivered %q", got)
		}
		for _, e := range evs {
			if e.Reason != LeaveClosed {
				t.Errorf("%v: reason %v, want closed", e, e.Reason)
			}
		}
		if h.Online("ann") {
			t.Fatal("ann online after shutdown")
		}
	})
}
