package nbiows

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lesismal/llib/std/crypto/tls"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// selfSigned returns a certificate for 127.0.0.1, in nbio's TLS.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// listening starts a Server that listens itself (with TLS if secure) and
// upgrades every request; it returns the URL and the accepted connections.
func listening(t *testing.T, secure bool) (string, chan *Conn) {
	t.Helper()
	skipUnderRace(t)
	accepted := make(chan *Conn, 1)
	var s *Server
	cfg := ServerConfig{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.Upgrade(w, r, Options{ConnID: "c-1"})
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		accepted <- c
	})}
	scheme := "ws://"
	if secure {
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
		scheme = "wss://"
	}
	s = newServer(t, cfg)
	return scheme + s.Addr().String() + "/ws", accepted
}

// TestConformanceOwnListener runs the suite on connections the Server
// accepted itself, plain and through nbio's TLS, with a gorilla client.
func TestConformanceOwnListener(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := "nbio-listener"
		if secure {
			name = "nbio-tls"
		}
		url, accepted := listening(t, secure)
		conformance.RunFormats(t, name+"+gorilla-client", func(t *testing.T, f wire.Format, subs []string) (a, b conformance.End) {
			d := websocket.Dialer{Subprotocols: subs, TLSClientConfig: &stdtls.Config{InsecureSkipVerify: true}, HandshakeTimeout: conformance.Wait}
			ws, resp, err := d.Dial(url, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			_ = resp.Body.Close()
			var sc *Conn
			select {
			case sc = <-accepted:
			case <-time.After(conformance.Wait):
				t.Fatal("no connection accepted")
			}
			c, err := gorillaws.Wrap(ws, gorillaws.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.Close(nil)
				_ = sc.Close(nil)
			})
			if sc.Format() != f || c.Format() != f {
				t.Fatalf("negotiated %v/%v, want %v", sc.Format(), c.Format(), f)
			}
			return end(sc), gorillaEnd(c)
		})
	}
}

// TestBlockedWorkerStallsNoHeartbeat: with a single worker held by a
// request handler that blocks (a slow authentication), another
// connection's heartbeats still go both ways: frames are handled on the
// poller, not on the workers.
func TestBlockedWorkerStallsNoHeartbeat(t *testing.T) {
	skipUnderRace(t)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before the server's Close, which runs at Cleanup
	blocked := make(chan struct{})
	accepted := make(chan *Conn, 1)
	var s *Server
	s = newServer(t, ServerConfig{Addr: "127.0.0.1:0", Workers: 1, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(blocked)
			<-release
			http.Error(w, "too slow", http.StatusServiceUnavailable)
			return
		}
		c, err := s.Upgrade(w, r, Options{})
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		accepted <- c
	})})
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+s.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	defer ws.Close()
	sc := <-accepted
	defer sc.Close(nil)
	defer free() // first: Close waits for the end, which a held worker would delay
	rec := conformance.NewRecorder()
	if err := sc.Bind(rec); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: conformance.Wait}).Get("http://" + s.Addr().String() + "/slow")
		if err == nil {
			_ = resp.Body.Close()
		}
		slow <- err
	}()
	select {
	case <-blocked:
	case <-time.After(conformance.Wait):
		t.Fatal("the slow request never reached its handler")
	}
	// The client's reader answers the server's pings (gorilla's default
	// handler).
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ctx := context.Background()
	for seq := uint64(1); seq <= 3; seq++ {
		if err := sc.Send(ctx, transport.Frame{Kind: transport.Ping, Seq: seq}); err != nil {
			t.Fatal(err)
		}
		if f := rec.WaitFrame(t, transport.Pong); f.Seq != seq {
			t.Fatalf("pong %d for ping %d", f.Seq, seq)
		}
		if err := ws.WriteControl(websocket.PingMessage, wire.AppendControl(nil, seq, 0), time.Now().Add(conformance.Wait)); err != nil {
			t.Fatal(err)
		}
		rec.WaitFrame(t, transport.Ping)
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow request ended early: %v", err)
	default:
	}
	free()
	<-slow
}

// skipUnderRace skips a test of the Server's own listener under the race
// detector: nbio's listener goroutine hands each accepted connection to
// its poller through epoll, which the detector cannot see, so it reports
// races inside nbio (net.TCPAddr read by the poller, written at accept).
func skipUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("nbio's own listener races under the detector (inside nbio); run without -race")
	}
}

// Clients that trickle their upgrade request and never finish its headers
// are closed by HeaderTimeout, all of them, where nbio alone would hold
// them for 120 s.
func TestHeaderTimeoutClosesTricklers(t *testing.T) {
	skipUnderRace(t)
	const n, timeout = 200, 300 * time.Millisecond
	s := newServer(t, ServerConfig{Addr: "127.0.0.1:0", HeaderTimeout: timeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Error("a request without its headers reached the handler")
		})})
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	open := 0
	for range n {
		c, err := net.DialTimeout("tcp", s.Addr().String(), conformance.Wait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(conformance.Wait))
			_, err := c.Read(make([]byte, 1))
			mu.Lock()
			defer mu.Unlock()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
				return
			}
			slowest = max(slowest, time.Since(start))
		})
	}
	wg.Wait()
	t.Logf("%d trickling clients: %d still open after %v; the last closed %v after the first dial (timeout %v)", n, open, conformance.Wait, slowest, timeout)
	if open > 0 {
		t.Errorf("%d of %d trickling clients still open", open, n)
	}
}
