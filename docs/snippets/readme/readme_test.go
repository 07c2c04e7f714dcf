// Package readme runs the Go snippets of README.md (see docs/snippets_test.go).
package readme

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/proptest"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
)

// logs captures what the snippets log.
var logs = struct {
	sync.Mutex
	bytes.Buffer
}{}

type logWriter struct{}

// online is signalled when a snippet logs "online", alive when one logs a
// change to alive.
var (
	online = make(chan struct{}, 1)
	alive  = make(chan struct{}, 1)
)

func (logWriter) Write(p []byte) (int, error) {
	logs.Lock()
	defer logs.Unlock()
	signal := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	if bytes.HasSuffix(p, []byte(" online\n")) { // log.Println("online") after the timestamp
		signal(online)
	}
	if bytes.Contains(p, []byte("→ alive")) {
		signal(alive)
	}
	return logs.Write(p)
}

func logged() string {
	logs.Lock()
	defer logs.Unlock()
	return logs.String()
}

func TestMain(m *testing.M) {
	log.SetOutput(logWriter{})
	m.Run()
}

// --- "A server in a few lines (gorilla)"

var upgrader = websocket.Upgrader{}

var messages = make(chan []byte, 1)

func handleMessage(msg []byte) { messages <- msg }

func handle(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c, err := gorillaws.Wrap(ws, gorillaws.Options{})
	if err != nil {
		return
	}
	// r.Context() ends when the handler returns, and the connection with
	// it: the handler blocks in its read loop below for the connection's
	// life. A handler that returns at once must pass a longer-lived context.
	d, err := c.Watch(r.Context(), fsm.DriverConfig{}, fsm.Presence{
		Online:  func() { log.Println("online") },
		Offline: func(ch fsm.Change) { log.Println("offline:", ch.Reason) },
	})
	if err != nil {
		return
	}
	defer d.Close()
	for {
		_, msg, err := c.Read(r.Context()) // the adapter owns the read side
		if err != nil {
			return
		}
		handleMessage(msg)
	}
}

// The server snippet on loopback: a plain gorilla client connects, its
// message reaches handleMessage, the peer comes online, and the handler
// returns once the client leaves.
func TestServerSnippet(t *testing.T) {
	returned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		handle(w, r)
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-messages:
		if string(m) != "hi" {
			t.Fatalf("handleMessage got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message never reached handleMessage")
	}
	select {
	case <-online:
	case <-time.After(10 * time.Second):
		t.Fatalf("Online never ran for a connected peer; log:\n%s", logged())
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = ws.Close()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the client left")
	}
}

// --- "A client that reconnects (coder)"

var appGot = make(chan string, 1)

func app(ctx context.Context, c *coderws.Conn) {
	if err := c.Write(ctx, coder.MessageText, []byte("hello")); err != nil {
		return
	}
	if _, msg, err := c.Read(ctx); err == nil {
		appGot <- string(msg)
	}
}

func client(ctx context.Context) error {
	d, err := fsm.Run(ctx, fsm.DriverConfig{
		Dialer: &coderws.Dialer{
			URL:       "wss://example.com/ws",
			OnConnect: func(c *coderws.Conn) { go app(ctx, c) }, // every (re)connection
		},
		OnChange: func(c fsm.Change) { log.Println(c) }, // "alive → dead (peer closed): ..."
	})
	if err != nil {
		return err
	}
	defer d.Close()
	select {
	case msg := <-appGot:
		if msg != "hello" {
			return errors.New("app read " + msg)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The client snippet verbatim, its wss://example.com dialled on a loopback
// TLS server (httptest's certificate is valid for example.com): app runs on
// the connection and reads the echo of its message.
func TestClientSnippet(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := coder.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if err := ws.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	loopback := srv.Client()
	tr := loopback.Transport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	saved := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: tr}
	defer func() { http.DefaultClient = saved }()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client(ctx); err != nil {
		t.Fatal(err)
	}
	select { // OnChange runs on the driver's goroutine, maybe after app's echo
	case <-alive:
	case <-time.After(10 * time.Second):
		t.Fatalf("OnChange never logged the connection; log:\n%s", logged())
	}
}

// --- "Verify your own policy"

// myBackoff is a full-jitter exponential backoff: the delay of attempt n is
// uniform in [0, min(1 min, 1 s·2^(n-1))].
type myBackoff struct{ rand *rand.Rand }

func (b *myBackoff) Next(r policy.Retry) (time.Duration, error) {
	ceil := time.Minute
	if r.Attempt < 7 {
		ceil = time.Second << (r.Attempt - 1)
	}
	return time.Duration(b.rand.Int64N(int64(ceil) + 1)), nil
}

func TestMyBackoff(t *testing.T) {
	proptest.CheckBackoff(t, func(r *rand.Rand) policy.Backoff { return &myBackoff{rand: r} },
		proptest.BackoffPromise{Max: time.Minute})
}

// The server snippet against 20 clients that each send 1 MiB messages as
// fast as they can to a handleMessage that takes none (the test holds
// them): the adapter's queue is bounded in bytes, so the server holds
// about two messages per connection (one in the handler, one queued) and
// the clients are slowed down by TCP, not buffered.
func TestServerSnippetHoldsLittlePerConnection(t *testing.T) {
	const clients, size, perClient = 20, 1 << 20, 16
	var handlers sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		handle(w, r)
	}))
	// Kernel buffers capped: what a flood parks in them is the kernel's
	// memory, not the heap measured here, and uncapped it would be 36 MiB
	// a socket.
	srv.Listener = conformance.SmallBuffers(srv.Listener, 256<<10)
	srv.Start()
	defer srv.Close()
	dialer := websocket.Dialer{NetDialContext: conformance.SmallBufferDial(256 << 10)}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	var sent atomic.Int64
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		ws, _, err := dialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = ws
		wg.Go(func() {
			msg := make([]byte, size)
			_ = ws.SetWriteDeadline(time.Now().Add(3 * time.Second)) // then the server is surely holding all it will
			for range perClient {
				if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
						t.Errorf("a client's write failed with %v, not the deadline: the server let go of it", err)
					}
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / clients / (1 << 20)
	t.Logf("%d clients sent %d messages of 1 MiB in all before TCP stopped them; the server's heap grew by %.2f MiB per connection", clients, sent.Load(), per)
	// Each connection fills the handler and the queue before TCP stops it
	// (one message each): fewer, and the bound would hold for want of load.
	if n := sent.Load(); n < 2*clients {
		t.Errorf("only %d messages sent by %d clients: the server was not loaded", n, clients)
	}
	if per > 2.5 {
		t.Errorf("the server holds %.2f MiB per connection, want about 2 (one message in the handler, one queued)", per)
	}
	for _, ws := range conns {
		_ = ws.Close()
	}
	returned := make(chan struct{})
	go func() { handlers.Wait(); close(returned) }()
	for { // take what the handlers hold until they have returned
		select {
		case <-messages:
		case <-returned:
			return
		}
	}
}

// --- Serving it: the http.Server

func serveSnippet(ln net.Listener) error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(handle),
		ReadHeaderTimeout: 5 * time.Second, // the upgrade request's headers
		IdleTimeout:       time.Minute,
	}
	err := srv.Serve(ln)
	return err
}

// 2,000 clients that send the start of an upgrade request and then trickle
// (here: stop): the server closes every one when ReadHeaderTimeout runs
// out, where a zero http.Server would hold them all for ever. A normal
// client is served meanwhile.
func TestServeSnippetClosesTricklers(t *testing.T) {
	const n = 2000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { _ = serveSnippet(ln) }()
	start := time.Now()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webs")); err != nil {
			t.Fatal(err)
		}
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatalf("a normal client among the tricklers: %v", err)
	}
	_ = ws.Close()
	var wg sync.WaitGroup
	var open atomic.Int64
	var last atomic.Int64
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
			_, err := io.ReadAll(c) // net/http may answer 408 first, then closes
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open.Add(1)
				return
			}
			if d := int64(time.Since(start)); d > last.Load() {
				last.Store(d)
			}
		})
	}
	wg.Wait()
	t.Logf("%d trickling clients: %d still open after 15 s; the last closed %v after the first dial", n, open.Load(), time.Duration(last.Load()).Round(time.Millisecond))
	if open.Load() > 0 {
		t.Errorf("%d of %d trickling clients still open", open.Load(), n)
	}
}
