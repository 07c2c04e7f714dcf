package integrating

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/coderws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

var appGot = make(chan string, 1)

func app(ctx context.Context, c *coderws.Conn) {
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		return
	}
	if _, msg, err := c.Read(ctx); err == nil {
		appGot <- string(msg)
	}
}

func client(ctx context.Context) error {
	d, err := fsm.Run(ctx, fsm.DriverConfig{
		Dialer: &coderws.Dialer{ // or &gorillaws.Dialer{...}
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

// echoTLS serves an echoing coder endpoint over TLS on loopback and routes
// http.DefaultClient's dials (whatever the host) to it; httptest's
// certificate is valid for example.com. handler, if set, replaces the echo.
func echoTLS(t *testing.T, handler http.HandlerFunc) {
	if handler == nil {
		handler = func(w http.ResponseWriter, r *http.Request) {
			ws, err := websocket.Accept(w, r, nil)
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
		}
	}
	srv := httptest.NewTLSServer(handler)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	saved := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: tr}
	t.Cleanup(func() {
		http.DefaultClient = saved
		srv.Close()
	})
}

func TestClientSnippet(t *testing.T) {
	echoTLS(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client(ctx); err != nil {
		t.Fatal(err)
	}
}

// The coder half of "Browsers: the application-level heartbeat".
func TestSubprotocolCoder(t *testing.T) {
	opts := &websocket.AcceptOptions{Subprotocols: wire.Subprotocols()} // coder
	formats := make(chan wire.Format, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coderws.Accept(w, r, opts, coderws.Options{})
		if err != nil {
			return
		}
		formats <- c.Format()
		_ = c.Close(nil)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, srv.URL, &websocket.DialOptions{Subprotocols: []string{wire.SubprotocolBinary}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if f := <-formats; f != wire.Binary {
		t.Fatalf("server format %v, want %v", f, wire.Binary)
	}
}
