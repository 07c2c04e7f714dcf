// Package js embeds the browser client of the heartbeat, heartbeat.js (an ES
// module with its TypeScript declarations), so a Go server can serve its own
// client:
//
//	mux.Handle("/hb/", http.StripPrefix("/hb", js.Handler()))
//
// and a page imports it from there:
//
//	import { connect } from "/hb/heartbeat.js";
//
// The module speaks package wire's application-level heartbeat over the
// subprotocols wire.SubprotocolBinary and wire.SubprotocolJSON; see
// docs/integrating.md for its states, defaults and close codes.
//
// On every dial the module sends a resume token as the query parameter
// ResumeParam: 16 random bytes in unpadded base64url (22 characters), kept in
// the tab's sessionStorage, so a reload in the same tab sends the same token
// and a server can treat the new connection as the old one resumed.
// ResumeToken reads and checks it. The token lets whoever holds it resume
// the tab's session, so a server keys sessions by SessionID, a digest of it
// that events, snapshots, logs and a cluster's Redis can show.
package js

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"regexp"
)

//go:embed heartbeat.js heartbeat.d.ts package.json
var files embed.FS

// FS returns the module's files: heartbeat.js, heartbeat.d.ts and
// package.json.
func FS() fs.FS { return files }

// Handler serves the module's files at their names ("/heartbeat.js",
// "/heartbeat.d.ts", "/package.json"), with the JavaScript MIME type that
// browsers require of a module script. Mount it under a prefix with
// http.StripPrefix.
func Handler() http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/heartbeat.js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		case "/heartbeat.d.ts":
			w.Header().Set("Content-Type", "application/typescript; charset=utf-8")
		case "/package.json":
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

// ResumeParam is the query parameter that carries the client's resume
// token on every dial.
const ResumeParam = "hb_resume"

// ErrResumeToken: the request carries a resume parameter that is not a
// token the module could have made.
var ErrResumeToken = errors.New("js: malformed resume token")

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// ResumeToken returns the resume token of a WebSocket handshake request:
// "" and nil when there is none, ErrResumeToken when it is malformed. The
// token is the client's claim, not a secret: bind it to what the server
// already knows of the client (its session) before honouring it.
func ResumeToken(r *http.Request) (string, error) {
	t := r.URL.Query().Get(ResumeParam)
	if t == "" {
		return "", nil
	}
	if !tokenRE.MatchString(t) {
		return "", ErrResumeToken
	}
	return t, nil
}

// SessionID returns the public ID of the request's session: a digest of its
// resume token (16 characters of base64url). Like the token it is the same
// on every dial of one tab and differs between tabs, so it serves as
// presence.Identity.Session; unlike the token it cannot be turned back into
// one, so the events, snapshots and logs that show it let no one resume the
// tab's session. "" and nil when there is no token, ErrResumeToken when it
// is malformed.
func SessionID(r *http.Request) (string, error) {
	t, err := ResumeToken(r)
	if err != nil || t == "" {
		return "", err
	}
	return SessionIDOf(t), nil
}

// SessionIDOf is SessionID for a token already read.
func SessionIDOf(token string) string {
	sum := sha256.Sum256([]byte("heartbeat session\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
