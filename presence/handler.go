package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/gorillaws"
	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// StatusError is an error from HandlerConfig.Authenticate that chooses the
// HTTP status of the refusal (401 Unauthorized for any other error).
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %v", e.Code, http.StatusText(e.Code), e.Err)
}
func (e *StatusError) Unwrap() error { return e.Err }

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Hub watches every connection. Required.
	Hub *Hub
	// Authenticate identifies the user and session of a request before the
	// upgrade (a cookie, a token, a resume token the client sends); an
	// error refuses the request with 401, or with a *StatusError's code.
	// An Identity without a user or a session is answered with 500 and
	// logged at Error (ErrIdentity): it is a bug of Authenticate. One over
	// HubConfig.MaxIDLen or MaxMeta is answered with 400 and logged at Info
	// (ErrIdentityTooLarge): its parts usually come from the request.
	// Required.
	Authenticate func(r *http.Request) (Identity, error)
	// Upgrader upgrades the request. Nil Subprotocols means
	// wire.Subprotocols(), so browsers get the application-level
	// heartbeat. gorilla's default CheckOrigin refuses a page from another
	// origin with 403 (the page sees only close 1006): set CheckOrigin to
	// allow the origins you serve.
	Upgrader websocket.Upgrader
	// Options configure each gorillaws.Conn (ConnID is set by the handler).
	Options gorillaws.Options
	// OnConnect, if set, is called once the hub watches the connection,
	// before any of its messages is handed to OnMessage.
	OnConnect func(c *Client)
	// OnMessage, if set, is called with every application message of a
	// connection, in order, on that connection's reader goroutine (the
	// adapter's): it must return promptly, since the connection reads
	// nothing else meanwhile, heartbeats included. Without it messages
	// are dropped.
	OnMessage func(c *Client, messageType int, data []byte)
	// OnDisconnect, if set, is called once the connection has ended and
	// its last message was handed to OnMessage, on a hub goroutine (its
	// presence is the hub's business: the session may live on).
	OnDisconnect func(c *Client, err error)
}

// Client is one connection served by a Handler. Write to it with its
// Write method (the adapter's), from any goroutine.
type Client struct {
	*gorillaws.Conn
	Identity Identity
	Watched  *Watched

	ready sync.WaitGroup // done when OnConnect has returned: no message before it
}

// Handler is an http.Handler that authenticates, upgrades and hands the
// connection to the hub; the adapter's reader then delivers the messages.
// ServeHTTP returns as soon as the connection is watched: no goroutine of
// the handler's (nor net/http's buffers) lives on per connection, and the
// request's context, cancelled then, is used for nothing.
type Handler struct {
	cfg HandlerConfig
	up  websocket.Upgrader
}

// NewHandler checks cfg and returns the Handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Hub == nil || cfg.Authenticate == nil {
		return nil, fmt.Errorf("%w: a Handler needs a Hub and an Authenticate function", ErrConfig)
	}
	up := cfg.Upgrader
	if up.Subprotocols == nil {
		up.Subprotocols = wire.Subprotocols()
	}
	if cfg.Options.ConnID != "" || cfg.Options.OnData != nil {
		return nil, fmt.Errorf("%w: Options.ConnID and Options.OnData are the handler's (messages go to OnMessage)", ErrConfig)
	}
	return &Handler{cfg: cfg, up: up}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hub := h.cfg.Hub
	if hub.closing.Load() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	id, err := h.cfg.Authenticate(r)
	if err != nil {
		code := http.StatusUnauthorized
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		hub.logf(slog.LevelInfo, "refused", slog.String("remote", r.RemoteAddr), slog.Int("status", code), slog.String("err", clip(err.Error(), 256)))
		http.Error(w, http.StatusText(code), code)
		return
	}
	if err := hub.CheckIdentity(id); err != nil {
		code, level := IdentityStatus(err)
		hub.logf(level, "refused", slog.String("remote", r.RemoteAddr), slog.Int("status", code), slog.String("err", err.Error()))
		http.Error(w, http.StatusText(code), code)
		return
	}
	ws, err := gorillaws.Upgrade(&h.up, w, r, nil) // the client's order of subprotocols wins; on failure gorilla has answered (400, 403, ...)
	if err != nil {
		hub.logf(slog.LevelInfo, "upgrade failed", slog.String("remote", r.RemoteAddr), slog.String("err", err.Error()))
		return
	}
	cl := &Client{Identity: id}
	cl.ready.Add(1)
	defer cl.ready.Done()
	opts := h.cfg.Options
	opts.ConnID = hub.NewConnID()
	opts.OnData = func(typ int, data []byte) {
		cl.ready.Wait() // for OnConnect, the first time
		if h.cfg.OnMessage != nil {
			h.cfg.OnMessage(cl, typ, data)
		}
	}
	c, err := gorillaws.Wrap(ws, opts)
	if err != nil {
		_ = ws.Close()
		hub.logf(slog.LevelError, "wrap failed", slog.String("err", err.Error()))
		return
	}
	cl.Conn = c
	var onEnd func(error)
	if h.cfg.OnDisconnect != nil {
		onEnd = func(err error) { h.cfg.OnDisconnect(cl, err) }
	}
	watched, err := hub.watch(c, opts.ConnID, id, onEnd)
	if err != nil {
		return
	}
	cl.Watched = watched
	if h.cfg.OnConnect != nil {
		h.cfg.OnConnect(cl)
	}
}

// IdentityStatus is the HTTP status and log level of a refusal by
// Hub.CheckIdentity: 400 and Info for an identity over the size limits
// (the request chose it), 500 and Error for an empty user or session (a
// bug of the application's authentication).
func IdentityStatus(err error) (int, slog.Level) {
	if errors.Is(err, ErrIdentityTooLarge) {
		return http.StatusBadRequest, slog.LevelInfo
	}
	return http.StatusInternalServerError, slog.LevelError
}

func (h *Hub) logf(level slog.Level, msg string, attrs ...slog.Attr) {
	if h.log != nil {
		h.log.LogAttrs(context.Background(), level, msg, attrs...)
	}
}
