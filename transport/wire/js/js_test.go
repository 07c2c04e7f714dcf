package js_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport/wire"
	"github.com/heartbeat-go/heartbeat/transport/wire/js"
)

// TestVectorsMatchWire checks the golden vectors the JS unit tests decode
// and re-encode against package wire, so the two codecs agree byte for byte.
func TestVectorsMatchWire(t *testing.T) {
	b, err := os.ReadFile("unit/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs [][2]string
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 4 {
		t.Fatalf("%d vectors, want at least 4", len(vs))
	}
	for _, v := range vs {
		bin, err := hex.DecodeString(v[0])
		if err != nil {
			t.Fatal(err)
		}
		m, err := wire.DecodeBinary(bin)
		if err != nil {
			t.Fatalf("%s: %v", v[0], err)
		}
		mj, err := wire.DecodeJSON([]byte(v[1]))
		if err != nil {
			t.Fatalf("%s: %v", v[1], err)
		}
		gotB, _ := wire.AppendBinary(nil, &mj)
		gotJ, _ := wire.AppendJSON(nil, &m)
		if hex.EncodeToString(gotB) != v[0] || string(gotJ) != v[1] {
			t.Errorf("vector %q / %q re-encodes to %x / %s", v[0], v[1], gotB, gotJ)
		}
	}
}

// TestTransitionsMatchFSM checks the transitions the JS unit tests allow
// (unit/transitions.json: every change the client makes must be one) against
// fsm.Transitions, so the module cannot take a transition the Go Machine
// cannot.
func TestTransitionsMatchFSM(t *testing.T) {
	b, err := os.ReadFile("unit/transitions.json")
	if err != nil {
		t.Fatal(err)
	}
	var js []string
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	var gos []string
	for _, e := range fsm.Transitions() {
		for _, src := range e.From {
			if p := src.String() + ">" + e.To.String(); !slices.Contains(gos, p) {
				gos = append(gos, p)
			}
		}
	}
	slices.Sort(gos)
	slices.Sort(js)
	if !slices.Equal(js, gos) {
		t.Errorf("unit/transitions.json %q\nfsm.Transitions     %q", js, gos)
	}
}

func TestHandlerServesModule(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/hb", js.Handler()))
	defer srv.Close()
	for path, want := range map[string]string{
		"/hb/heartbeat.js":   "text/javascript",
		"/hb/heartbeat.d.ts": "application/typescript",
		"/hb/package.json":   "application/json",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) < 100 {
			t.Errorf("%s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/hb/", "/hb/js.go", "/hb/unit/fake.js", "/hb/../go.mod"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// The module's constants and the Go side's agree.
func TestModuleConstants(t *testing.T) {
	src, err := os.ReadFile("heartbeat.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`SUBPROTOCOL_JSON = "` + wire.SubprotocolJSON + `"`,
		`SUBPROTOCOL_BINARY = "` + wire.SubprotocolBinary + `"`,
		`RESUME_PARAM = "` + js.ResumeParam + `"`,
		"MAX_MESSAGE_SIZE = 1024",
		"CLOSE_PAGE_AWAY = " + strconv.Itoa(wire.ClosePageAway),
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("heartbeat.js lacks %s", want)
		}
	}
	if wire.MaxMessageSize != 1024 {
		t.Errorf("wire.MaxMessageSize is %d", wire.MaxMessageSize)
	}
}

func TestResumeToken(t *testing.T) {
	for q, want := range map[string]error{
		"":                                      nil,
		"?hb_resume=AAAAAAAAAAAAAAAAAAAAAA":     nil,
		"?hb_resume=abc":                        js.ErrResumeToken,
		"?hb_resume=AAAAAAAAAAAAAAAAAAAA%2F%2F": js.ErrResumeToken,
	} {
		r := httptest.NewRequest("GET", "/ws"+q, nil)
		tok, err := js.ResumeToken(r)
		if !errors.Is(err, want) || (want == nil && q != "" && tok != "AAAAAAAAAAAAAAAAAAAAAA") {
			t.Errorf("%q: %q, %v", q, tok, err)
		}
	}
}

func TestSessionID(t *testing.T) {
	const tok = "AAAAAAAAAAAAAAAAAAAAAA"
	r := httptest.NewRequest("GET", "/ws?hb_resume="+tok, nil)
	id, err := js.SessionID(r)
	if err != nil || len(id) != 16 || strings.Contains(id, tok[:8]) || id != js.SessionIDOf(tok) {
		t.Fatalf("SessionID: %q, %v", id, err)
	}
	if other := js.SessionIDOf("AAAAAAAAAAAAAAAAAAAAAB"); other == id {
		t.Errorf("two tokens, one ID %q", id)
	}
	if id, err := js.SessionID(httptest.NewRequest("GET", "/ws", nil)); id != "" || err != nil {
		t.Errorf("no token: %q, %v", id, err)
	}
	if _, err := js.SessionID(httptest.NewRequest("GET", "/ws?hb_resume=abc", nil)); !errors.Is(err, js.ErrResumeToken) {
		t.Errorf("malformed token: %v", err)
	}
}
