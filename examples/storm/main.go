// Command storm measures a reconnect storm on real loopback sockets, as
// `hbsim -scenario storm` does in the simulator: N coder clients, each
// running fsm.Run with the library's default policies, connect to a gorilla
// server; once every client holds the server's advice (or, without it, has
// been connected a while), the server is killed (listener and every socket
// closed at once) and restarted on the same address, where a token bucket
// lets at most -accept connections a second through and answers 503 to the
// rest. It prints the peak of dial attempts in any sliding 1-second window
// against the accept rate, and when 50 % and 99 % of the clients were back.
//
//	go run ./examples/storm -clients 2000 -accept 200
//	go run ./examples/storm -clients 2000 -accept 200 -advise=false
//
// Each client and its server end use two file descriptors: keep -clients
// well under half of `ulimit -n`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.Clients, "clients", 2000, "clients")
	flag.Float64Var(&cfg.Accept, "accept", 200, "connections the restarted server accepts per second")
	flag.BoolVar(&cfg.Advise, "advise", true, "the server advertises clients/accept as its reconnect window (policy.DefaultServerSet); false: it only listens, as before it pinged to advise")
	flag.DurationVar(&cfg.Idle, "idle", 15*time.Second, "without -advise: how long the clients stay connected before the kill")
	flag.DurationVar(&cfg.Horizon, "horizon", 2*time.Minute, "how long after the restart to wait for the clients")
	seed := flag.Uint64("seed", 1, "seed of the clients' backoff jitter")
	flag.Parse()
	cfg.Seed = *seed
	ctx, stop := context.WithTimeout(context.Background(), cfg.Horizon+5*time.Minute)
	defer stop()
	r, err := run(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	r.print(os.Stdout)
}

// config configures one storm.
type config struct {
	Clients int
	Accept  float64 // accepts per second after the restart
	// Advise: the server advertises Clients/Accept and uses
	// policy.DefaultServerSet, which pings to deliver it. Otherwise it
	// only listens (Listen without Advise) and advertises the same window,
	// which then reaches nobody.
	Advise bool
	// Idle: without Advise, how long every client stays connected before
	// the kill (with Advise the kill comes once every client has answered
	// the server's advised ping).
	Idle    time.Duration
	Horizon time.Duration // the longest wait for the clients after the restart
	Seed    uint64
	// Client, if set, adjusts each client's configuration (tests use it
	// for short intervals).
	Client func(*fsm.Config)
}

// result is what one storm measured. Times count from the kill.
type result struct {
	Clients  int
	Accept   float64
	Window   time.Duration // the advertised window
	Advised  int           // clients whose first redial after the kill saw the window
	Back     int           // clients connected again within the horizon
	Attempts int           // handshakes the restarted server saw
	Refused  int           // of which answered 503
	Peak     int           // most attempts in any sliding 1 s window
	PerSec   []int         // attempts in each second from the kill
	Restart  time.Duration // from the kill to the new listener
	P50, P99 time.Duration // when 50 % and 99 % were back; sim.Never if not
	Floor    time.Duration // Clients/Accept
}

func (r *result) print(w io.Writer) {
	dur := func(d time.Duration) string {
		if d == sim.Never {
			return "never"
		}
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	fmt.Fprintf(w, "%d coder clients, gorilla server accepting %g/s after the restart (floor %v), advice %v\n", r.Clients, r.Accept, r.Floor, r.Window)
	fmt.Fprintf(w, "server listening again %v after the kill\n", r.Restart.Round(time.Microsecond))
	fmt.Fprintf(w, "clients holding the advice at their first redial: %d of %d\n", r.Advised, r.Clients)
	fmt.Fprintf(w, "peak attempts in a sliding 1 s window: %d (%.2f × accept rate)\n", r.Peak, float64(r.Peak)/r.Accept)
	fmt.Fprintf(w, "attempts %d, refused %d, back %d, p50 %s, p99 %s (p99/floor %.2f)\n", r.Attempts, r.Refused, r.Back, dur(r.P50), dur(r.P99), float64(r.P99)/float64(r.Floor))
	fmt.Fprintf(w, "attempts per second from the kill: %v\n", r.PerSec)
}

// run runs one storm: connect every client, kill and restart the server,
// wait for the clients to come back (or the horizon), and tear down.
func run(ctx context.Context, cfg config) (*result, error) {
	if cfg.Clients <= 0 || !(cfg.Accept > 0) || math.IsInf(cfg.Accept, 0) {
		return nil, fmt.Errorf("storm: want clients > 0 and a finite accept rate > 0, have %d and %g", cfg.Clients, cfg.Accept)
	}
	floor := time.Duration(float64(cfg.Clients) / cfg.Accept * float64(time.Second))
	res := &result{Clients: cfg.Clients, Accept: cfg.Accept, Window: floor, Floor: floor, P50: sim.Never, P99: sim.Never}
	srv := &server{window: floor, advise: cfg.Advise, ready: make(chan struct{}, cfg.Clients)}
	if err := srv.start("127.0.0.1:0", 0); err != nil {
		return nil, err
	}
	defer srv.kill()
	url := "ws://" + srv.addr + "/ws"

	var (
		mu      sync.Mutex
		killed  time.Time // zero until the kill
		backAt  []time.Duration
		advised int
		alive   = make(chan struct{}, cfg.Clients)
		allBack = make(chan struct{})
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drivers := make([]*fsm.Driver, 0, cfg.Clients)
	defer func() {
		cancel()
		for _, d := range drivers {
			_ = d.Close()
		}
	}()
	seeds := rand.New(rand.NewPCG(cfg.Seed, 0))
	start := func(i int) error {
		set := policy.DefaultSet(rand.New(rand.NewPCG(seeds.Uint64(), uint64(i))))
		first, up, back := true, false, false
		c := fsm.Config{
			Detector: set.Detector, Interval: set.Interval,
			Backoff: backoffFunc(func(r policy.Retry) (time.Duration, error) {
				mu.Lock()
				if !killed.IsZero() && first {
					first = false
					if r.Advice == floor {
						advised++
					}
				}
				mu.Unlock()
				return set.Backoff.Next(r)
			}),
		}
		if cfg.Client != nil {
			cfg.Client(&c)
		}
		d, err := fsm.Run(cctx, fsm.DriverConfig{
			Config: c,
			Dialer: &coderws.Dialer{URL: url},
			OnChange: func(ch fsm.Change) {
				if ch.To != fsm.Alive || ch.From != fsm.Connecting {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if killed.IsZero() {
					if !up { // a reconnection before the kill is not a new client
						up = true
						alive <- struct{}{}
					}
					return
				}
				if back {
					return
				}
				back = true
				backAt = append(backAt, ch.At.Sub(killed))
				if len(backAt) == cfg.Clients {
					close(allBack)
				}
			},
		})
		if err != nil {
			return err
		}
		drivers = append(drivers, d)
		return nil
	}
	// Connect in batches that each come alive before the next starts, so
	// the listen backlog never overflows.
	const batch = 100
	for i := 0; i < cfg.Clients; i += batch {
		n := min(batch, cfg.Clients-i)
		for j := range n {
			if err := start(i + j); err != nil {
				return nil, err
			}
		}
		for range n {
			if err := wait(ctx, alive); err != nil {
				return nil, fmt.Errorf("storm: connecting: %w", err)
			}
		}
	}
	if cfg.Advise {
		// Every server connection has had a pong to its advised ping: the
		// client read the advice before it answered.
		for range cfg.Clients {
			if err := wait(ctx, srv.ready); err != nil {
				return nil, fmt.Errorf("storm: waiting for the advice to arrive: %w", err)
			}
		}
	} else if err := wait(ctx, clockAfter(cfg.Idle)); err != nil {
		return nil, err
	}

	mu.Lock()
	killed = time.Now()
	mu.Unlock()
	unwound := srv.stop()
	err := srv.start(srv.addr, cfg.Accept) // at once, as after a SIGKILL
	res.Restart = time.Since(killed)
	unwound()
	if err != nil {
		return nil, err
	}
	hctx, hcancel := context.WithTimeout(ctx, cfg.Horizon)
	defer hcancel()
	select {
	case <-allBack:
	case <-hctx.Done():
	}

	mu.Lock()
	defer mu.Unlock()
	res.Advised = advised
	res.Back = len(backAt)
	slices.Sort(backAt)
	if n := (cfg.Clients + 1) / 2; len(backAt) >= n {
		res.P50 = backAt[n-1]
	}
	if n := int(math.Ceil(0.99 * float64(cfg.Clients))); len(backAt) >= n {
		res.P99 = backAt[n-1]
	}
	res.Attempts, res.Refused, res.Peak, res.PerSec = srv.stats(killed)
	return res, nil
}

// wait receives from ch unless ctx ends first.
func wait[T any](ctx context.Context, ch <-chan T) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clockAfter is time.After for the idle wait of an unadvised storm.
func clockAfter(d time.Duration) <-chan time.Time { return time.After(d) }

// backoffFunc adapts a function to policy.Backoff.
type backoffFunc func(policy.Retry) (time.Duration, error)

func (f backoffFunc) Next(r policy.Retry) (time.Duration, error) { return f(r) }

// server is a gorilla WebSocket server that can be killed and restarted on
// the same address, with a token bucket on the handshakes after a restart.
type server struct {
	window time.Duration // the advice
	advise bool
	ready  chan struct{} // one send per connection whose first advised ping was answered
	// wrap, if set, wraps each connection's detector (tests watch the
	// evidence with it).
	wrap func(policy.Detector) policy.Detector

	mu       sync.Mutex
	addr     string
	ln       net.Listener
	hs       *http.Server
	conns    map[net.Conn]struct{}
	rate     float64 // 0: unlimited
	tokens   float64
	last     time.Time
	attempts []time.Time
	refused  int
	handlers *sync.WaitGroup // this generation's handlers
	served   chan struct{}
}

// start listens on addr and serves, accepting at most rate handshakes a
// second (0: unlimited) through a bucket of a tenth of a second's worth.
func (s *server) start(addr string, rate float64) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("storm: listen: %w", err)
	}
	s.mu.Lock()
	s.addr, s.ln = ln.Addr().String(), ln
	s.conns = map[net.Conn]struct{}{}
	s.rate, s.tokens, s.last = rate, max(1, rate/10), time.Now()
	s.hs = &http.Server{
		Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, admittedKey{}, c)
		},
	}
	ln = &limited{Listener: ln, s: s}
	s.served = make(chan struct{})
	s.handlers = new(sync.WaitGroup)
	hs, served := s.hs, s.served
	s.mu.Unlock()
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	return nil
}

// kill closes the listener and every connection at once, as the kernel
// does for a process killed with SIGKILL, and waits for the handlers.
func (s *server) kill() { s.stop()() }

// stop is kill without the wait, which it returns: a restart need not wait
// for the old handlers to unwind.
func (s *server) stop() (wait func()) {
	s.mu.Lock()
	hs, served, wg := s.hs, s.served, s.handlers
	s.hs = nil
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	if hs == nil {
		return func() {}
	}
	_ = hs.Close() // the listener and the connections not hijacked
	for c := range conns {
		_ = c.Close()
	}
	return func() {
		<-served
		wg.Wait()
	}
}

// take reports whether the bucket lets one more handshake through.
func (s *server) take(now time.Time) bool {
	if s.rate == 0 {
		return true
	}
	burst := max(1, s.rate/10)
	s.tokens = min(burst, s.tokens+now.Sub(s.last).Seconds()*s.rate)
	s.last = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// stats returns the handshakes since t0, the refused ones, the most in any
// sliding 1 s window, and the count in each second from t0.
func (s *server) stats(t0 time.Time) (attempts, refused, peak int, perSec []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := sim.PeakMeter{Window: time.Second}
	for _, at := range s.attempts {
		if !at.Before(t0) {
			attempts++
			p.Add(at.Sub(t0))
			i := int(at.Sub(t0) / time.Second)
			for len(perSec) <= i {
				perSec = append(perSec, 0)
			}
			perSec[i]++
		}
	}
	return attempts, s.refused, p.Max(), perSec
}

var upgrader = websocket.Upgrader{}

// limited is the server's listener: the token bucket decides at the TCP
// accept, when the dial arrives, so the handlers' scheduling on a busy
// machine neither bunches the attempts' times nor the refusals.
type limited struct {
	net.Listener
	s *server
}

// admitted is an accepted connection and the bucket's verdict on it.
type admitted struct {
	net.Conn
	ok bool
}

type admittedKey struct{}

func (l *limited) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.s
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rate > 0 {
		s.attempts = append(s.attempts, now)
	}
	ok := s.take(now)
	if !ok {
		s.refused++
	}
	return &admitted{Conn: c, ok: ok}, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.conns == nil { // killed
		s.mu.Unlock()
		return
	}
	limited := s.rate > 0
	wg := s.handlers
	wg.Add(1)
	s.mu.Unlock()
	defer wg.Done()
	if c, _ := r.Context().Value(admittedKey{}).(*admitted); c == nil || !c.ok {
		// One attempt per TCP connection: the client must not reuse it.
		w.Header().Set("Connection", "close")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.conns == nil {
		s.mu.Unlock()
		_ = ws.NetConn().Close()
		return
	}
	s.conns[ws.NetConn()] = struct{}{}
	s.mu.Unlock()
	c, err := gorillaws.Wrap(ws, gorillaws.Options{})
	if err != nil {
		_ = ws.NetConn().Close()
		return
	}
	set := policy.DefaultServerSet()
	if !s.advise {
		set.Interval = &policy.Listen{ProbeGrowth: policy.DefaultProbeGrowth}
	}
	det := set.Detector
	if s.advise && !limited && s.ready != nil {
		det = &firstPong{Detector: det, ready: s.ready}
	}
	if s.wrap != nil {
		det = s.wrap(det)
	}
	d, err := c.Watch(r.Context(), fsm.DriverConfig{
		Config: fsm.Config{Detector: det, Interval: set.Interval},
		Advice: func() time.Duration { return s.window },
	}, fsm.Presence{})
	if err != nil {
		return
	}
	defer d.Close()
	for {
		// The handler blocks while the connection lives: r.Context() is
		// cancelled when it returns.
		if _, _, err := c.Read(r.Context()); err != nil {
			return
		}
	}
}

// firstPong is a Detector that signals the first pong to one of its own
// pings (a round trip is known only for those).
type firstPong struct {
	policy.Detector
	ready chan<- struct{}
	done  bool
}

func (f *firstPong) Observe(now time.Time, rtt time.Duration) {
	f.Detector.Observe(now, rtt)
	if rtt > 0 && !f.done {
		f.done = true
		select {
		case f.ready <- struct{}{}:
		default:
		}
	}
}
