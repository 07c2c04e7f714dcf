package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestPresenceJSONKeys pins the keys of the presence rows of -json.
func TestPresenceJSONKeys(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-json", "-scenario", "detect", "-profile", "mobile", "-policy", "default", "-conns", "6", "-duration", "3h", "-windows", "30s"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rep map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	rows := rep["presence"]
	if len(rows) != 3 {
		t.Fatalf("want 3 presence rows (derived, per-connection, 30s): %s", out.String())
	}
	for _, k := range []string{"policy", "profile", "flaps_per_user_day", "leave_p50_ms", "leave_p99_ms", "presence_model", "window", "window_ms", "closed_flaps_per_user_day", "server_closes", "users", "user_days", "leave_samples"} {
		for i, r := range rows {
			if _, ok := r[k]; !ok {
				t.Errorf("presence row %d lacks %q", i, k)
			}
		}
	}
	want := [][2]string{{"resume", "derived"}, {"per-connection", "none"}, {"resume", "30s"}}
	for i, r := range rows {
		if r["policy"] != "default" || r["profile"] != "mobile" || r["presence_model"] != want[i][0] || r["window"] != want[i][1] {
			t.Errorf("presence row %d: %v", i, r)
		}
	}
	if _, ok := rows[0]["flaps_per_user_day"].(float64); !ok {
		t.Errorf("flaps_per_user_day is not a number: %v", rows[0]["flaps_per_user_day"])
	}
	if rows[0]["server_closes"] != "drain" {
		t.Errorf("server_closes %v, want drain by default", rows[0]["server_closes"])
	}
	if rows[0]["window_ms"].(float64) <= 0 || rows[1]["window_ms"].(float64) != 0 || rows[2]["window_ms"].(float64) != 30000 {
		t.Errorf("windows: %v, %v, %v ms", rows[0]["window_ms"], rows[1]["window_ms"], rows[2]["window_ms"])
	}
}

func TestPresenceDrainFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-json", "-drain=false", "-scenario", "detect", "-profile", "wan", "-policy", "default", "-conns", "4", "-duration", "1h"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rep map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rows := rep["presence"]; len(rows) != 2 || rows[0]["server_closes"] != "leave" || rows[1]["presence_model"] != "per-connection" {
		t.Errorf("-drain=false rows: %v", rows)
	}
}

func TestPresenceTable(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-scenario", "detect", "-profile", "wan", "-policy", "default,socketio", "-conns", "4", "-duration", "1h"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	i := strings.Index(s, "\nPresence, seed ")
	if i < 0 {
		t.Fatalf("no presence table:\n%s", s)
	}
	lines := strings.Split(s[i:], "\n")
	if len(lines) < 6 || !strings.HasPrefix(lines[3], "profile") {
		t.Fatalf("presence table:\n%s", s[i:])
	}
	for k, pol := range []string{"default", "socketio"} {
		if f := strings.Fields(lines[4+k]); len(f) < 4 || f[0] != "wan" || f[1] != pol || f[2] != "10s" {
			t.Errorf("row %d: %q", k, lines[4+k])
		}
	}
}

func TestBadWindows(t *testing.T) {
	for _, w := range []string{"0s", "-1s", "x", "2h"} {
		err := run([]string{"-windows", w}, io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("-windows %s: err = %v, want a usage error", w, err)
		}
	}
	err := run([]string{"-h"}, io.Discard, io.Discard)
	var help helpRequested
	if !errors.As(err, &help) || !strings.Contains(string(help), "  -windows ") {
		t.Errorf("usage lacks -windows: %v", err)
	}
}
