package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/heartbeat-go/heartbeat/presence"
)

// ErrKeyspace is wrapped by every KeyspaceError: an entry in Redis that this
// package did not write (a foreign key, a hand edit, a newer format) or
// cannot read. Such an entry is skipped and reported, never a panic.
var ErrKeyspace = errors.New("cluster: malformed keyspace entry")

// KeyspaceError says which Redis entry could not be read, and why.
type KeyspaceError struct {
	Key    string // the Redis key
	Field  string // the hash field or stream entry ID, if any
	Reason string
}

func (e *KeyspaceError) Error() string {
	s := "cluster: malformed keyspace entry " + strconv.Quote(e.Key)
	if e.Field != "" {
		s += " at " + strconv.Quote(e.Field)
	}
	return s + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrKeyspace) true.
func (e *KeyspaceError) Unwrap() error { return ErrKeyspace }

// sessKey names one session cluster-wide.
type sessKey struct{ user, session string }

// encodeField is a session's field in a node's session hash and in its
// stream entries: the user's length, a colon, the user, the session. Any
// bytes are allowed in either name.
func encodeField(k sessKey) string {
	return strconv.Itoa(len(k.user)) + ":" + k.user + k.session
}

// decodeField is encodeField's inverse; the error explains a field it
// cannot split.
func decodeField(f string) (sessKey, error) {
	i := strings.IndexByte(f, ':')
	if i <= 0 || i > 10 {
		return sessKey{}, errors.New("session field lacks its user length")
	}
	n, err := strconv.Atoi(f[:i])
	if err != nil || n < 0 || f[0] == '+' || f[0] == '-' || (f[0] == '0' && i > 1) {
		return sessKey{}, fmt.Errorf("session field's user length %q is not a number", f[:i])
	}
	rest := f[i+1:]
	if n > len(rest) {
		return sessKey{}, fmt.Errorf("session field's user length %d exceeds the %d bytes that follow", n, len(rest))
	}
	return sessKey{rest[:n], rest[n:]}, nil
}

// encodeMeta is a session's metadata as stored: "" for none, else JSON.
func encodeMeta(m presence.Meta) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(map[string]string(m)) // strings only: cannot fail
	return string(b)
}

func decodeMeta(s string) (presence.Meta, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("metadata is not a JSON object of strings: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return presence.Meta(m), nil
}

// decodeInc reads an incarnation number (a lease's value).
func decodeInc(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("incarnation %q is not a positive integer", s)
	}
	return n, nil
}

// op is one change of a node's sessions, as its stream carries it.
type op struct {
	up     bool
	key    sessKey
	meta   presence.Meta        // up
	reason presence.LeaveReason // down
}

// entry is one stream entry: a batch of a node's changes.
type entry struct {
	id  string
	inc uint64
	n   uint64 // the batch's number within the incarnation, from 1; 0 marks a registration
	ops []op
}

// Stream entry layout: "i" incarnation, "n" batch number, then one pair
// per change: "u" + field → metadata, or "d" + field → reason ("c"
// closed, "e" expired).

// decodeEntry reads one stream entry's field-value list.
func decodeEntry(id string, kv []string) (entry, error) {
	e := entry{id: id}
	if len(kv)%2 != 0 {
		return e, errors.New("odd number of fields")
	}
	if len(kv) < 4 || kv[0] != "i" || kv[2] != "n" {
		return e, errors.New("entry does not start with its incarnation and number")
	}
	var err error
	if e.inc, err = decodeInc(kv[1]); err != nil {
		return e, err
	}
	if e.n, err = strconv.ParseUint(kv[3], 10, 64); err != nil {
		return e, fmt.Errorf("batch number %q is not an integer", kv[3])
	}
	if e.n == 0 && len(kv) > 4 {
		return e, errors.New("a registration marker (batch 0) carries changes")
	}
	for i := 4; i < len(kv); i += 2 {
		f, v := kv[i], kv[i+1]
		if f == "" {
			return e, errors.New("empty change")
		}
		k, err := decodeField(f[1:])
		if err != nil {
			return e, err
		}
		switch f[0] {
		case 'u':
			m, err := decodeMeta(v)
			if err != nil {
				return e, err
			}
			e.ops = append(e.ops, op{up: true, key: k, meta: m})
		case 'd':
			r := presence.LeaveExpired
			switch v {
			case "c":
				r = presence.LeaveClosed
			case "e":
			default:
				return e, fmt.Errorf("leave reason %q is neither c nor e", v)
			}
			e.ops = append(e.ops, op{key: k, reason: r})
		default:
			return e, fmt.Errorf("change kind %q is neither u nor d", f[:1])
		}
	}
	return e, nil
}

// encodeOp is op's pair in a stream entry.
func encodeOp(o op) (string, string) {
	if o.up {
		return "u" + encodeField(o.key), encodeMeta(o.meta)
	}
	if o.reason == presence.LeaveClosed {
		return "d" + encodeField(o.key), "c"
	}
	return "d" + encodeField(o.key), "e"
}

// rawEntry is a stream entry as XRANGE returns it, fields in order
// (go-redis's XMessage keeps them in a map).
type rawEntry struct {
	id string
	kv []string
}

// rawEntries reads an XRANGE reply.
func rawEntries(v []any) ([]rawEntry, error) {
	out := make([]rawEntry, 0, len(v))
	for _, x := range v {
		pair, ok := x.([]any)
		if !ok || len(pair) != 2 {
			return nil, errors.New("stream reply entry is not an ID and fields")
		}
		id, ok := pair[0].(string)
		if !ok {
			return nil, errors.New("stream entry ID is not a string")
		}
		fs, ok := pair[1].([]any)
		if !ok {
			return nil, fmt.Errorf("stream entry %s: fields are not a list", id)
		}
		e := rawEntry{id: id, kv: make([]string, len(fs))}
		for i, f := range fs {
			if e.kv[i], ok = f.(string); !ok {
				return nil, fmt.Errorf("stream entry %s: field %d is not a string", id, i)
			}
		}
		out = append(out, e)
	}
	return out, nil
}
