// Package nbiohandler is presence.Handler for connections read by an
// nbiows.Server's poller: it authenticates a request, upgrades it, hands
// the connection to the hub and returns. Afterwards no goroutine exists
// for the connection: its frames are read by the poller, its messages and
// heartbeats handled on the server's workers, its timers on the hub's
// wheels.
package nbiohandler

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/transport/nbiows"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("nbiohandler: invalid config")

// Config configures a Handler.
type Config struct {
	// Hub watches every connection. Required.
	Hub *presence.Hub
	// Server upgrades and reads the connections. Required.
	Server *nbiows.Server
	// Authenticate identifies the user and session of a request before the
	// upgrade; an error refuses it with 401, or a *presence.StatusError's
	// code. An Identity the hub refuses (presence.Hub.CheckIdentity) is
	// answered with presence.IdentityStatus's code, before the upgrade.
	// It runs on net/http's goroutine: a slow one holds no worker.
	// Required.
	Authenticate func(r *http.Request) (presence.Identity, error)
	// Options configure each connection (ConnID, OnData and OnClose are
	// the handler's).
	Options nbiows.Options
	// OnConnect, if set, is called once the hub watches the connection,
	// before any of its messages is handed to OnMessage.
	OnConnect func(c *Client)
	// OnMessage, if set, is called with every application message, in
	// order, on a worker: it must return promptly.
	OnMessage func(c *Client, messageType int, data []byte)
	// OnDisconnect, if set, is called once the connection has ended, after
	// its last message.
	OnDisconnect func(c *Client, err error)
	// OnRefused, if set, is called with the HTTP status of every request
	// refused before or at the upgrade (for metrics: promhub's Refused).
	OnRefused func(r *http.Request, status int)
	// Logger, if set, logs refusals.
	Logger *slog.Logger
}

// Client is one connection served by a Handler. Write to it with its
// Write method, from any goroutine.
type Client struct {
	*nbiows.Conn
	Identity presence.Identity
	Watched  *presence.Watched

	ready sync.WaitGroup // done when OnConnect has returned
}

// Handler is an http.Handler serving WebSocket upgrades to the hub.
type Handler struct{ cfg Config }

// New checks cfg and returns the Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Hub == nil || cfg.Server == nil || cfg.Authenticate == nil {
		return nil, fmt.Errorf("%w: a Handler needs a Hub, a Server and an Authenticate function", ErrConfig)
	}
	if cfg.Options.ConnID != "" || cfg.Options.OnData != nil || cfg.Options.OnClose != nil {
		return nil, fmt.Errorf("%w: Options.ConnID, OnData and OnClose are the handler's", ErrConfig)
	}
	return &Handler{cfg: cfg}, nil
}

func (h *Handler) refuse(r *http.Request, status int, err error) {
	if h.cfg.OnRefused != nil {
		h.cfg.OnRefused(r, status)
	}
	if h.cfg.Logger != nil {
		h.cfg.Logger.Info("refused", slog.String("remote", r.RemoteAddr), slog.Int("status", status), slog.String("err", clip(err.Error())))
	}
}

// clip bounds an error text the request may have chosen (Authenticate's
// error may quote it) before it goes into a log line.
func clip(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:max], len(s))
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.cfg.Authenticate(r)
	if err != nil {
		code := http.StatusUnauthorized
		var se *presence.StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		http.Error(w, http.StatusText(code), code)
		h.refuse(r, code, err)
		return
	}
	if err := h.cfg.Hub.CheckIdentity(id); err != nil {
		code, _ := presence.IdentityStatus(err)
		http.Error(w, http.StatusText(code), code)
		h.refuse(r, code, err)
		return
	}
	cl := &Client{Identity: id}
	cl.ready.Add(1)
	defer cl.ready.Done()
	opts := h.cfg.Options
	opts.ConnID = h.cfg.Hub.NewConnID()
	opts.OnData = func(typ int, data []byte) {
		cl.ready.Wait() // for OnConnect, the first time
		if h.cfg.OnMessage != nil {
			h.cfg.OnMessage(cl, typ, data)
		}
	}
	if h.cfg.OnDisconnect != nil {
		opts.OnClose = func(err error) { h.cfg.OnDisconnect(cl, err) }
	}
	c, err := h.cfg.Server.Upgrade(w, r, opts)
	if err != nil {
		status := http.StatusInternalServerError // a hijack or poller failure
		var ue *nbiows.UpgradeError
		switch {
		case errors.As(err, &ue):
			status = ue.Status
		case errors.Is(err, nbiows.ErrServerClosed):
			status = http.StatusServiceUnavailable
		}
		h.refuse(r, status, err)
		return
	}
	cl.Conn = c
	watched, err := h.cfg.Hub.Watch(c, opts.ConnID, id) // closes c on failure (1001 on shutdown)
	if err != nil {
		return
	}
	cl.Watched = watched
	if h.cfg.OnConnect != nil {
		h.cfg.OnConnect(cl)
	}
}
