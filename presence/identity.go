package presence

import "fmt"

// Identity says whose connection it is, as the application's
// authentication established at the upgrade. User and Session must not be
// empty (ErrIdentity). Events, snapshots and log lines show both, so
// neither may be a secret: a browser tab's session is js.SessionID, a digest
// of its resume token, which survives a reload and differs between tabs.
type Identity struct {
	User, Session string
	Meta          Meta
}

// IdentitySizeError says which part of an Identity is over its limit. It
// holds sizes, never the value, so it is safe to log.
type IdentitySizeError struct {
	Part        string // "user", "session" or "meta"
	Size, Limit int    // in bytes
}

func (e *IdentitySizeError) Error() string {
	return fmt.Sprintf("%v: %s of %d bytes, over the limit of %d", ErrIdentityTooLarge, e.Part, e.Size, e.Limit)
}

func (e *IdentitySizeError) Unwrap() error { return ErrIdentityTooLarge }

// CheckIdentity reports whether the hub would watch a connection of id:
// ErrIdentity for an empty user or session, an *IdentitySizeError
// (ErrIdentityTooLarge) for one over MaxIDLen or MaxMeta. A handler calls it
// before the upgrade, so a refusal is an HTTP status, not a close.
func (h *Hub) CheckIdentity(id Identity) error {
	if id.User == "" || id.Session == "" {
		return fmt.Errorf("%w: user %q, session %q", ErrIdentity, clip(id.User, 64), clip(id.Session, 64))
	}
	if len(id.User) > h.cfg.MaxIDLen {
		return &IdentitySizeError{Part: "user", Size: len(id.User), Limit: h.cfg.MaxIDLen}
	}
	if len(id.Session) > h.cfg.MaxIDLen {
		return &IdentitySizeError{Part: "session", Size: len(id.Session), Limit: h.cfg.MaxIDLen}
	}
	meta := 0
	for k, v := range id.Meta {
		meta += len(k) + len(v)
	}
	if meta > h.cfg.MaxMeta {
		return &IdentitySizeError{Part: "meta", Size: meta, Limit: h.cfg.MaxMeta}
	}
	return nil
}

// clip shortens a value the peer may have chosen to max bytes before it
// goes into an error or a log line.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:max], len(s))
}
