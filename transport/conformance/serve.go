package conformance

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// RunFormats runs the suite once for each heartbeat format (control
// frames, JSON, binary), named name+"-"+format. newPair makes a pair that
// uses format f; subprotocols are what both ends offer to select it (none
// for control frames).
func RunFormats(t *testing.T, name string, newPair func(t *testing.T, f wire.Format, subprotocols []string) (a, b End)) {
	for _, f := range []wire.Format{wire.Control, wire.JSON, wire.Binary} {
		var subs []string
		if f != wire.Control {
			subs = []string{f.Subprotocol()}
		}
		Run(t, Harness{
			Name:    name + "-" + f.String(),
			NewPair: func(t *testing.T) (a, b End) { return newPair(t, f, subs) },
		})
	}
}

// Serve starts a loopback HTTP server, closed when the test ends, whose
// handler makes a connection of every request with accept. It returns the
// server's ws:// URL and a function that waits for the next accepted
// connection; a failed accept fails the test.
func Serve[C any](t testing.TB, accept func(w http.ResponseWriter, r *http.Request) (C, error)) (url string, accepted func() C) {
	t.Helper()
	type result struct {
		c  C
		ok bool
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := accept(w, r)
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		results <- result{c, err == nil}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), func() C {
		t.Helper()
		r := <-results
		if !r.ok {
			t.FailNow()
		}
		return r.c
	}
}

// DialGorilla dials url with a gorilla client offering subprotocols,
// closed when the test ends. wrap, if set, wraps the client's TCP
// connection (to inject faults). A failed dial fails the test.
func DialGorilla(t testing.TB, url string, subprotocols []string, wrap func(net.Conn) net.Conn) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: subprotocols}
	if wrap != nil {
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(c), nil
		}
	}
	client, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = client.Close() })
	return client
}
