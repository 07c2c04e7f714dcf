package presence_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// An identity over the hub's limits is refused with 400 before the
// upgrade, logged without its value, and never reaches presence: a
// session ID taken from a header as one of 600 KiB, a user of 257 bytes,
// a Meta of 5 KiB. The limits are HubConfig's defaults.
func TestIdentityOverLimitsRefused(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	evs := newEvents()
	hub, err := presence.NewHub(presence.HubConfig{
		OnEvent: evs.add,
		Logger:  slog.New(slog.NewTextHandler(syncWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(t.Context())
	h, err := presence.NewHandler(presence.HandlerConfig{
		Hub: hub,
		Authenticate: func(r *http.Request) (presence.Identity, error) {
			return presence.Identity{
				User:    r.Header.Get("X-User"),
				Session: r.Header.Get("X-Session"),
				Meta:    presence.Meta{"note": r.Header.Get("X-Note")},
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	big := strings.Repeat("s", 600<<10)
	for _, c := range []struct {
		name                string
		user, session, note string
	}{
		{"session of 600 KiB", "ann", big, ""},
		{"user of 257 bytes", strings.Repeat("u", presence.DefaultMaxIDLen+1), "tab", ""},
		{"meta of 5 KiB", "ann", "tab", strings.Repeat("m", 5<<10)},
	} {
		hdr := http.Header{"X-User": {c.user}, "X-Session": {c.session}, "X-Note": {c.note}}
		_, resp, err := websocket.DefaultDialer.Dial(url, hdr)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: dial %v, response %v, want 400", c.name, err, resp)
		}
	}
	// At the limits exactly, the same identity is served.
	hdr := http.Header{"X-User": {strings.Repeat("u", presence.DefaultMaxIDLen)}, "X-Session": {"tab"}, "X-Note": {strings.Repeat("m", presence.DefaultMaxMeta-len("note"))}}
	ws, _, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		t.Fatalf("an identity at the limits: %v", err)
	}
	evs.wait(t, presence.UserJoined, hdr.Get("X-User"), 10*time.Second)
	_ = ws.Close()

	logMu.Lock()
	defer logMu.Unlock()
	refusals := 0
	for line := range strings.Lines(logs.String()) {
		if len(line) > 1<<10 {
			t.Errorf("a log line of %d bytes: %.200s...", len(line), line)
		}
		if strings.Contains(line, "msg=refused") && strings.Contains(line, "status=400") && strings.Contains(line, presence.ErrIdentityTooLarge.Error()) {
			refusals++
		}
	}
	if refusals != 3 {
		t.Errorf("%d refusals logged with status 400 and the size error, want 3; logs:\n%.2000s", refusals, logs.String())
	}
}

// The error names the part and its size, and matches both ways.
func TestCheckIdentity(t *testing.T) {
	hub, err := presence.NewHub(presence.HubConfig{MaxIDLen: 8, MaxMeta: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(t.Context())
	for _, c := range []struct {
		id   presence.Identity
		part string
	}{
		{presence.Identity{User: "123456789", Session: "s"}, "user"},
		{presence.Identity{User: "u", Session: "123456789"}, "session"},
		{presence.Identity{User: "u", Session: "s", Meta: presence.Meta{"key": "12345678"}}, "meta"},
	} {
		err := hub.CheckIdentity(c.id)
		var se *presence.IdentitySizeError
		if !errors.As(err, &se) || se.Part != c.part || !errors.Is(err, presence.ErrIdentityTooLarge) {
			t.Errorf("%+v: %v, want an IdentitySizeError for the %s", c.id, err, c.part)
		}
	}
	if err := hub.CheckIdentity(presence.Identity{User: "12345678", Session: "12345678", Meta: presence.Meta{"k": "123456789"}}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
	if err := hub.CheckIdentity(presence.Identity{User: "u"}); !errors.Is(err, presence.ErrIdentity) {
		t.Errorf("empty session: %v, want ErrIdentity", err)
	}
	if _, err := presence.NewHub(presence.HubConfig{MaxIDLen: -1}); !errors.Is(err, presence.ErrConfig) {
		t.Errorf("negative MaxIDLen: %v, want ErrConfig", err)
	}
}

// The docs' Authenticate takes the session from js.SessionID, which
// refuses anything but a token heartbeat.js could have made: a 600 KiB
// resume value is answered 400 before the hub sees it.
func TestDocsServeRefusesHugeResume(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, func(presence.Event) {}) }()
	url := "ws://" + ln.Addr().String() + "/?" + js.ResumeParam + "=" + strings.Repeat("a", 600<<10)
	_, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Cookie": {"user=ann"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("dial with a 600 KiB resume value: %v, %v, want 400", err, resp)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// The docs' server keys a tab's session by a digest of its resume token:
// the join and leave events show the digest, and no event holds the token.
func TestDocsServeShowsNoResumeToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	var events []presence.Event
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, ln, func(e presence.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	}()
	const tab = "Zm9vYmFyLXRhYi10b2tlbg"
	url := "ws://" + ln.Addr().String() + "/?" + js.ResumeParam + "=" + tab
	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Cookie": {"user=ann"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, _, _ = c.ReadMessage() // the echo: the session has joined
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	_ = c.Close()
	stop()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var sessions int
	for _, e := range events {
		if s := fmt.Sprintf("%+v", e); strings.Contains(s, tab) {
			t.Errorf("an event shows the resume token: %s", s)
		}
		if e.Session != "" {
			sessions++
			if e.Session != js.SessionIDOf(tab) {
				t.Errorf("event %v: session %q, want js.SessionIDOf(token) %q", e, e.Session, js.SessionIDOf(tab))
			}
		}
	}
	if sessions < 2 {
		t.Errorf("events %v: want the session's join and leave", events)
	}
}
