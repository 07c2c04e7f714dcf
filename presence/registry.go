package presence

import (
	"container/heap"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// DefaultResumeWindow is the resume window of a Registry whose config
// leaves it zero: how long a session outlives its last connection, waiting
// for a reconnect. A Hub derives its own from the reconnect window it
// advertises (see HubConfig.ResumeWindow).
const DefaultResumeWindow = 10 * time.Second

// MaxResumeWindow bounds RegistryConfig.ResumeWindow: a session that no
// connection holds must not look online for longer.
const MaxResumeWindow = time.Hour

// ErrConfig is wrapped by every configuration error of this package.
var ErrConfig = errors.New("presence: bad config")

// RegistryInputKind says what happened to a connection.
type RegistryInputKind uint8

const (
	// ConnAlive: the connection is alive (its heartbeat says so). The first
	// ConnAlive of a connection registers it under Input.User and
	// Input.Session with Input.Meta; later ones are ignored (identity is
	// fixed for a connection's life).
	ConnAlive RegistryInputKind = iota + 1
	// ConnUpdate: new metadata for the connection's session.
	ConnUpdate
	// ConnLost: the connection ended without a goodbye (dead, reset, going
	// away). Its session stays online for the resume window, waiting for a
	// reconnect.
	ConnLost
	// ConnClosed: the connection ended on purpose (a clean close by the
	// client, a logout, a kick). Its session leaves at once unless another
	// connection holds it.
	ConnClosed
	// DeadlineReached: the registry is woken at (or after) its Deadline.
	DeadlineReached
	// EndAll: the registry's owner ends (a hub shutting down). Every
	// session still online leaves at once, reason LeaveClosed, lingering
	// ones too: no resume can come to a server that is gone.
	EndAll
)

var inputNames = [...]string{"", "conn alive", "conn update", "conn lost", "conn closed", "deadline reached", "end all"}

func (k RegistryInputKind) String() string {
	if k != 0 && int(k) < len(inputNames) {
		return inputNames[k]
	}
	return "input(?)"
}

// RegistryInput is one thing that happened, handed to Registry.Step.
type RegistryInput struct {
	Kind RegistryInputKind
	// Conn is the connection's ID, unique for the server's life (the hub
	// assigns it; the wire format carries it to the client).
	Conn string
	// User and Session identify whose connection it is (ConnAlive only).
	// A session belongs to one user; the same session name under two users
	// is two sessions.
	User, Session string
	// Meta is the session's metadata (ConnAlive, ConnUpdate). The registry
	// keeps its own copy.
	Meta Meta
	// Window, for ConnLost, is how long the session waits for a reconnect
	// if this was its last connection. Zero means the registry's
	// ResumeWindow; at most MaxResumeWindow.
	Window time.Duration
}

// Meta is small per-session metadata: device, app version, ...
type Meta map[string]string

// EventKind says what changed.
type EventKind uint8

const (
	// UserJoined: the user's first session came online.
	UserJoined EventKind = iota + 1
	// SessionJoined: a session came online (after UserJoined for the
	// user's first).
	SessionJoined
	// SessionUpdated: a session's metadata changed.
	SessionUpdated
	// SessionLeft: a session went offline (before UserLeft for the user's
	// last).
	SessionLeft
	// UserLeft: the user's last session went offline.
	UserLeft
)

var eventNames = [...]string{"", "user joined", "session joined", "session updated", "session left", "user left"}

func (k EventKind) String() string {
	if k != 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event(?)"
}

// LeaveReason says why a session left.
type LeaveReason uint8

const (
	// LeaveNone: the event is not a leave.
	LeaveNone LeaveReason = iota
	// LeaveClosed: its last connection was closed on purpose.
	LeaveClosed
	// LeaveExpired: its last connection was lost and none resumed the
	// session within the resume window.
	LeaveExpired
)

func (r LeaveReason) String() string {
	switch r {
	case LeaveNone:
		return "none"
	case LeaveClosed:
		return "closed"
	case LeaveExpired:
		return "expired"
	}
	return "leave(?)"
}

// Event is one presence change. Events carry a sequence number that grows by
// one with every event of the registry, so a consumer that holds a Snapshot
// applies exactly the events after its Seq.
type Event struct {
	Seq           uint64
	Kind          EventKind
	At            time.Time
	User, Session string
	// Meta is the session's metadata, for SessionJoined and SessionUpdated.
	// It is the registry's copy: do not modify it.
	Meta   Meta
	Reason LeaveReason // SessionLeft, UserLeft
}

func (e Event) String() string {
	s := fmt.Sprintf("#%d %v %s", e.Seq, e.Kind, e.User)
	if e.Kind != UserJoined && e.Kind != UserLeft {
		s += "/" + e.Session
	}
	if e.Reason != LeaveNone {
		s += " (" + e.Reason.String() + ")"
	}
	return s
}

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// ResumeWindow is how long a session stays online after its last
	// connection was lost, waiting for a reconnect to resume it. Zero means
	// DefaultResumeWindow; at most MaxResumeWindow.
	ResumeWindow time.Duration
}

// Registry knows who is online: users, their sessions, and the connections
// that hold them. Like fsm.Machine it is sans-I/O: it is handed what
// happened to connections, with the time, and returns presence events; it
// reads no clock and starts no goroutine. Deadline says when to wake it.
//
// A user is online while any of their sessions is. A session is online
// from its first alive connection until its last connection has ended and,
// if that one was lost rather than closed, no connection resumed it within
// the resume window. So a reconnect, a second tab, or a new connection that
// overtakes the old one (the old one dies later) causes no event at all.
//
// It is not safe for concurrent use; its driver (the Hub, the simulator, a
// test) serialises calls.
type Registry struct {
	window   time.Duration
	seq      uint64
	conns    map[string]*session
	sessions map[sessionKey]*session
	users    map[string]*session // user → the first of their sessions online
	expiry   expiryHeap          // lingering sessions, soonest first
}

type sessionKey struct{ user, session string }

type session struct {
	key      sessionKey
	next     *session // the user's next session online
	meta     Meta
	conns    int32 // live connections holding it
	index    int32 // in the expiry heap; -1 when not lingering
	expireAt time.Time
}

// NewRegistry returns an empty Registry.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	switch {
	case cfg.ResumeWindow < 0:
		return nil, fmt.Errorf("%w: resume window %v must not be negative (zero means %v)", ErrConfig, cfg.ResumeWindow, DefaultResumeWindow)
	case cfg.ResumeWindow > MaxResumeWindow:
		return nil, fmt.Errorf("%w: resume window %v exceeds %v", ErrConfig, cfg.ResumeWindow, MaxResumeWindow)
	case cfg.ResumeWindow == 0:
		cfg.ResumeWindow = DefaultResumeWindow
	}
	return &Registry{
		window:   cfg.ResumeWindow,
		conns:    make(map[string]*session),
		sessions: make(map[sessionKey]*session),
		users:    make(map[string]*session),
	}, nil
}

// ResumeWindow returns the window in effect.
func (r *Registry) ResumeWindow() time.Duration { return r.window }

// Seq returns the sequence number of the latest event (0 before any).
func (r *Registry) Seq() uint64 { return r.seq }

// Deadline returns when the registry must next be woken with
// DeadlineReached: the earliest moment a lingering session expires. The
// zero Time means no deadline.
func (r *Registry) Deadline() time.Time {
	if len(r.expiry) == 0 {
		return time.Time{}
	}
	return r.expiry[0].expireAt
}

// Step applies one input at now and appends the events it causes to out.
// Inputs about an unknown connection are ignored, so duplicates and the
// reports of a connection that was never alive are harmless. now should not
// run backwards; an earlier now is treated as the latest seen.
func (r *Registry) Step(now time.Time, in RegistryInput, out []Event) []Event {
	out = r.expire(now, out)
	switch in.Kind {
	case ConnAlive:
		if _, ok := r.conns[in.Conn]; ok {
			return out
		}
		k := sessionKey{in.User, in.Session}
		s := r.sessions[k]
		if s == nil {
			s = &session{key: k, meta: copyMeta(in.Meta), index: -1}
			r.sessions[k] = s
			s.next = r.users[k.user]
			r.users[k.user] = s
			if s.next == nil {
				out = r.emit(out, Event{Kind: UserJoined, At: now, User: k.user})
			}
			out = r.emit(out, Event{Kind: SessionJoined, At: now, User: k.user, Session: k.session, Meta: s.meta})
		} else {
			if s.index >= 0 {
				heap.Remove(&r.expiry, int(s.index)) // resumed
			}
			if in.Meta != nil && !maps.Equal(s.meta, in.Meta) {
				s.meta = copyMeta(in.Meta)
				out = r.emit(out, Event{Kind: SessionUpdated, At: now, User: k.user, Session: k.session, Meta: s.meta})
			}
		}
		s.conns++
		r.conns[in.Conn] = s
	case ConnUpdate:
		s := r.conns[in.Conn]
		if s == nil || maps.Equal(s.meta, in.Meta) {
			return out
		}
		s.meta = copyMeta(in.Meta)
		out = r.emit(out, Event{Kind: SessionUpdated, At: now, User: s.key.user, Session: s.key.session, Meta: s.meta})
	case ConnLost, ConnClosed:
		s := r.conns[in.Conn]
		if s == nil {
			return out
		}
		delete(r.conns, in.Conn)
		s.conns--
		if s.conns > 0 {
			return out
		}
		if in.Kind == ConnClosed {
			return r.leave(now, s, LeaveClosed, out)
		}
		w := r.window
		if in.Window > 0 {
			w = min(in.Window, MaxResumeWindow)
		}
		s.expireAt = now.Add(w)
		heap.Push(&r.expiry, s)
	case EndAll:
		clear(r.conns)
		r.expiry = r.expiry[:0]
		for _, user := range slices.Sorted(maps.Keys(r.users)) {
			for r.users[user] != nil {
				out = r.leave(now, r.users[user], LeaveClosed, out)
			}
		}
	}
	return out
}

// expire makes every session whose resume window ended by now leave.
func (r *Registry) expire(now time.Time, out []Event) []Event {
	for len(r.expiry) > 0 && !r.expiry[0].expireAt.After(now) {
		s := heap.Pop(&r.expiry).(*session)
		out = r.leave(s.expireAt, s, LeaveExpired, out)
	}
	return out
}

func (r *Registry) leave(at time.Time, s *session, why LeaveReason, out []Event) []Event {
	delete(r.sessions, s.key)
	out = r.emit(out, Event{Kind: SessionLeft, At: at, User: s.key.user, Session: s.key.session, Reason: why})
	head := r.users[s.key.user]
	if head == s {
		head = s.next
	} else {
		for p := head; p != nil; p = p.next {
			if p.next == s {
				p.next = s.next
				break
			}
		}
	}
	s.next = nil
	if head != nil {
		r.users[s.key.user] = head
		return out
	}
	delete(r.users, s.key.user)
	return r.emit(out, Event{Kind: UserLeft, At: at, User: s.key.user, Reason: why})
}

func (r *Registry) emit(out []Event, e Event) []Event {
	r.seq++
	e.Seq = r.seq
	return append(out, e)
}

func copyMeta(m Meta) Meta {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// Online reports whether user has a session online.
func (r *Registry) Online(user string) bool { return r.users[user] != nil }

// Users returns how many users are online.
func (r *Registry) Users() int { return len(r.users) }

// Sessions returns how many sessions are online (lingering ones included).
func (r *Registry) Sessions() int { return len(r.sessions) }

// Conns returns how many live connections the registry knows.
func (r *Registry) Conns() int { return len(r.conns) }

// SessionInfo describes one online session.
type SessionInfo struct {
	Session string
	Meta    Meta // the registry's copy: do not modify it
	// Conns is how many live connections hold it; 0 while it lingers in
	// its resume window.
	Conns int
}

// UserInfo describes one online user.
type UserInfo struct {
	User     string
	Sessions []SessionInfo // sorted by Session
}

// Snapshot is everything online as of event Seq: apply the events with a
// greater Seq to stay current.
type Snapshot struct {
	Seq   uint64
	Users []UserInfo // sorted by User
}

// Snapshot returns who is online now.
func (r *Registry) Snapshot() Snapshot {
	snap := Snapshot{Seq: r.seq, Users: make([]UserInfo, 0, len(r.users))}
	for u, ss := range r.users {
		snap.Users = append(snap.Users, UserInfo{User: u, Sessions: sessionInfos(ss)})
	}
	slices.SortFunc(snap.Users, func(a, b UserInfo) int { return cmpString(a.User, b.User) })
	return snap
}

// User returns the sessions of one user, or nil if the user is offline.
func (r *Registry) User(user string) []SessionInfo {
	return sessionInfos(r.users[user])
}

func sessionInfos(head *session) []SessionInfo {
	var out []SessionInfo
	for s := head; s != nil; s = s.next {
		out = append(out, SessionInfo{Session: s.key.session, Meta: s.meta, Conns: int(s.conns)})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmpString(a.Session, b.Session) })
	return out
}

func cmpString(a, b string) int { return strings.Compare(a, b) }

// expiryHeap orders lingering sessions by expiry.
type expiryHeap []*session

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	return h[i].expireAt.Before(h[j].expireAt)
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}
func (h *expiryHeap) Push(x any) {
	s := x.(*session)
	s.index = int32(len(*h))
	*h = append(*h, s)
}
func (h *expiryHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.index = -1
	return s
}
