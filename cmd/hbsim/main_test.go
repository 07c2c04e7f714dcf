package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heartbeat-go/heartbeat/policy"
)

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"-conns", "-1"},
		{"-duration", "1s"},
		{"-scenario", "soak"},
		{"-profile", "moon"},
		{"-policy", "nope"},
		{"-policy", "adaptive@nope"},
		{"-loss", "1.5"},
		{"-link", "pigeon"},
		{"-plot", "out.pdf"},
		{"-profile", "wan", "-loss", "0.1"},
		{"-trace", "x.trace"},
		{"stray"},
	} {
		var out, errb bytes.Buffer
		err := run(args, &out, &errb)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q is more than one line", args, err)
		}
	}
}

func TestJSONRun(t *testing.T) {
	dir := t.TempDir()
	plot := filepath.Join(dir, "p.svg")
	trace := filepath.Join(dir, "t.trace")
	var out, errb bytes.Buffer
	if err := run([]string{"-json", "-scenario", "detect", "-profile", "wan", "-policy", "fixed", "-conns", "5", "-duration", "30m", "-plot", plot, "-trace", trace}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rep map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(rep["detect"]) != 1 || rep["storm"] == nil {
		t.Fatalf("want one detect row and a storm list: %s", out.String())
	}
	for _, k := range []string{"policy", "profile", "seed", "conns", "virtual_hours", "detection_p50_ms", "detection_p99_ms",
		"false_deads_per_conn_day", "false_suspects_per_conn_day", "heartbeat_msgs_per_conn_min",
		"heartbeat_bytes_per_conn_min", "best_fixed_detection_p50_ms", "events", "wall_seconds"} {
		if _, ok := rep["detect"][0][k]; !ok {
			t.Errorf("detect row lacks %q", k)
		}
	}
	if rep["detect"][0]["events"].(float64) <= 0 {
		t.Error("no events simulated")
	}
	for _, f := range []string{plot, trace} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if errb.Len() != 0 {
		t.Errorf("stderr not empty when it is not a terminal: %q", errb.String())
	}
}

func TestStormJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-json", "-scenario", "storm", "-policy", "fixed", "-clients", "300", "-accept", "100"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rep map[string][]map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep["storm"]) != 1 {
		t.Fatalf("want one storm row: %s", out.String())
	}
	for _, k := range []string{"policy", "clients", "accept_per_sec", "peak_attempts_per_sec", "total_attempts", "p50_reconnect_s", "p99_reconnect_s", "floor_s"} {
		if _, ok := rep["storm"][0][k]; !ok {
			t.Errorf("storm row lacks %q", k)
		}
	}
	if rep["storm"][0]["floor_s"].(float64) != 3 {
		t.Errorf("floor %v, want 300/100 = 3 s", rep["storm"][0]["floor_s"])
	}
}

// Every policy name hbsim prints in its detect tables resolves through
// policy.Lookup, so a user can copy it into code.
func TestPrintedNamesResolve(t *testing.T) {
	names := allPolicies()
	if len(names) < 10 {
		t.Fatalf("allPolicies() = %v", names)
	}
	for _, n := range names {
		if _, err := policy.Lookup(n); err != nil {
			t.Errorf("hbsim prints %q but policy.Lookup fails: %v", n, err)
		}
	}
}
