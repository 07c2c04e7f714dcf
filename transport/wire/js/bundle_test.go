package js_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The module is written in parts (src/*.js: constants, codec, detector,
// machine, client) and shipped as one file, heartbeat.js, that a page imports and
// js.Handler serves. The parts are joined in this order, each without its
// own header (its comment and import lines up to the first blank line);
// "export /* internal */" marks what a part exports to the others and the
// shipped file keeps to itself.
var bundleParts = []struct{ file, section string }{
	{"src/constants.js", ""},
	{"src/codec.js", "codec"},
	{"src/detector.js", "policies"},
	{"src/machine.js", "machine"},
	{"src/client.js", "client"},
}

const bundleHeader = `// heartbeat.js: the browser client of github.com/heartbeat-go/heartbeat.
//
// A dependency-free ES module. It speaks the application-level heartbeat of
// package transport/wire (JSON and binary forms, negotiated through the
// WebSocket subprotocol) and mirrors the Go fsm.Machine: the states
// connecting, alive, suspect, dead, reconnecting and closed, the Adaptive
// detector and AdaptiveInterval pinger with the Go defaults, the stall guard
// and the server-advised backoff. One client owns at most one socket at any
// moment. See docs/integrating.md ("Browsers").
//
// Built from src/constants.js, codec.js, detector.js, machine.js and
// client.js: edit those, then rebuild this file with
// go test ./transport/wire/js -run TestBundleIsCurrent -update
`

// bundle joins the parts into heartbeat.js.
func bundle() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(bundleHeader)
	for _, p := range bundleParts {
		src, err := os.ReadFile(p.file)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimRight(string(src), "\n"), "\n")
		i := 0
		for i < len(lines) && (strings.HasPrefix(lines[i], "//") || strings.HasPrefix(lines[i], "import ")) {
			if strings.HasPrefix(lines[i], "import ") && !strings.HasSuffix(lines[i], `.js";`) {
				return nil, fmt.Errorf("%s:%d: an import on one line from a part (./x.js) is all a part may import", p.file, i+1)
			}
			i++
		}
		if i == 0 || i >= len(lines) || lines[i] != "" {
			return nil, fmt.Errorf("%s: want a header (comment and import lines) and a blank line before the code", p.file)
		}
		b.WriteString("\n")
		if p.section != "" {
			fmt.Fprintf(&b, "// ---------------------------------------------------------------- %s\n\n", p.section)
		}
		for _, l := range lines[i+1:] {
			if strings.HasPrefix(l, "import ") {
				return nil, fmt.Errorf("%s: an import after the header", p.file)
			}
			b.WriteString(strings.Replace(l, "export /* internal */ ", "", 1))
			b.WriteString("\n")
		}
	}
	return b.Bytes(), nil
}

// TestBundleIsCurrent checks that heartbeat.js is src/*.js joined (-update
// rewrites it), so the file pages load is the one the parts describe.
func TestBundleIsCurrent(t *testing.T) {
	got, err := bundle()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "heartbeat.js", got, "it is not src/*.js joined: edit src/, then rebuild it with go test ./transport/wire/js -run TestBundleIsCurrent -update")
}
