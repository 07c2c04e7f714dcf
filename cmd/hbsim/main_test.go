package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/sim"
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
		{"-plot", "out.png"},
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

// The main output opens with a verdict in words and numbers and a legend;
// a -profile without -scenario runs no storm and no baseline row; a
// -duration prints as given; the event budget's cut is said.
func TestMainOutput(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-profile", "mobile", "-policy", "default,socketio", "-duration", "10m", "-conns", "3"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"Verdict\n  mobile: ", "false dead", "B/min", "Columns: ", "mobile: 10m of virtual time",
		"-budget", "A false suspect is a\n    probe, not a disconnect", `policy.Lookup("NAME")`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasPrefix(s, "Verdict\n") {
		t.Errorf("output does not open with the verdict:\n%s", s)
	}
	for _, bad := range []string{"storm", noJitter, "0.1666"} {
		if strings.Contains(s, bad) {
			t.Errorf("output has %q, which nobody asked for:\n%s", bad, s)
		}
	}
	out.Reset()
	if err := run([]string{"-scenario", "detect", "-profile", "lan", "-policy", "akka", "-duration", "24h"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Note: runs are sized") || !strings.Contains(out.String(), "for akka") {
		t.Errorf("a 24h run cut to fewer connections does not say so:\n%s", out.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if len([]rune(l)) > 100 && !strings.HasPrefix(l, "policy") && !strings.HasPrefix(l, "akka") {
			t.Errorf("line of %d columns: %q", len([]rune(l)), l)
		}
	}
}

// The verdict's numbers are the rows' own: the fastest policy without
// false deads within the cost budget, the faster ones with their cost.
func TestVerdictFromRows(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rep := &report{Detect: []detectRow{
		{Policy: "default", Profile: "mobile", DetectionP50: f(8900), DetectionP99: f(14100), FalseDeadsPerConnDay: 4.12, BytesPerConnMin: 273},
		{Policy: "signalr", Profile: "mobile", DetectionP50: f(22000), DetectionP99: f(29800), BytesPerConnMin: 148},
		{Policy: "grpc", Profile: "mobile", Undetected: 3, BytesPerConnMin: 135},
		{Policy: "akka", Profile: "mobile", DetectionP50: f(5100), DetectionP99: f(5700), BytesPerConnMin: 2811},
		{Policy: "phi", Profile: "mobile", DetectionP50: f(4800), DetectionP99: f(7800), FalseDeadsPerConnDay: 34.94, BytesPerConnMin: 267},
	}}
	v := verdict(rep)
	want := "mobile: within 300 B/min, signalr detects a dead peer in 22.0s (p50; p99 29.8s) for 148 B/min per connection, with no false dead verdict; akka is faster (5.1s) at 2811 B/min; phi is faster still (4.8s) but declares 34.9 false deads per connection-day; default: 8.9s for 273 B/min, 4.1 false deads per connection-day."
	if len(v) != 1 || v[0] != want {
		t.Fatalf("verdict =\n%q\nwant\n%q", v, want)
	}
	// -budget 100: nothing clean is that cheap, so the verdict names the
	// fastest clean policy at any cost.
	rep.budget = 100
	v = verdict(rep)
	if len(v) != 1 || !strings.HasPrefix(v[0], "mobile: akka detects a dead peer in 5.1s") {
		t.Fatalf("verdict with -budget 100 = %q", v)
	}
}

// -trace warns before writing a large file.
func TestTraceWarnsAboutSize(t *testing.T) {
	big := job{detect: &sim.Config{Conns: 34, Duration: 6 * time.Hour}}
	big.detect.Preset, _ = policy.Lookup("fixed")
	if mb := traceEstimateMB(big); mb < 10 {
		t.Fatalf("the documented -trace example is estimated at %.1f MB; it writes about 31 MB", mb)
	}
	var out, errb bytes.Buffer
	dir := t.TempDir()
	if err := run([]string{"-scenario", "detect", "-profile", "lan", "-policy", "fixed", "-conns", "2", "-duration", "10h", "-trace", filepath.Join(dir, "t")}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if errb.Len() != 0 {
		t.Errorf("a small trace warned: %q", errb.String())
	}
	defer func(mb float64) { traceWarnMB = mb }(traceWarnMB)
	traceWarnMB = traceEstimateMB(job{detect: &sim.Config{Preset: big.detect.Preset, Conns: 2, Duration: 10 * time.Hour}}) / 2
	if err := run([]string{"-scenario", "detect", "-profile", "lan", "-policy", "fixed", "-conns", "2", "-duration", "10h", "-trace", filepath.Join(dir, "t")}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "warning: -trace writes") {
		t.Errorf("a large trace did not warn: %q", errb.String())
	}
}

// Labels never overlap one another in the plot's model of the panel, and
// a label that moved off its point gets a leader line.
func TestPlotLabelsDoNotOverlap(t *testing.T) {
	var pts []xy
	var names []string
	for i := range 20 {
		pts = append(pts, xy{0, 3 + float64(i%7)*0.3})
		names = append(names, fmt.Sprintf("policy-%d", i))
	}
	p := &panel{x: axis{scale: log1pScale, min: 0, max: 1}, y: axis{min: 0, max: 45}}
	labels := placeLabels(p, pts, names)
	var boxes []box
	leaders := 0
	for _, l := range labels {
		x, y := p.px(l.at)
		b := box{x + l.dx + 1e-6, y + l.dy + 1e-6, x + l.dx + float64(len(l.text))*charW - 1e-6, y + l.dy + lineH - 1e-6} // touching is fine
		for _, o := range boxes {
			if b.overlaps(o) {
				t.Fatalf("label %q overlaps another", l.text)
			}
		}
		boxes = append(boxes, b)
		if l.leader {
			leaders++
		}
	}
	if len(boxes) < 15 {
		t.Errorf("only %d of 20 crowded labels placed", len(boxes))
	}
	if leaders == 0 {
		t.Error("no leader lines for labels moved off their points")
	}
}

// The plot is well-formed SVG with a panel per profile and the storm's,
// a point and a label per policy, a line per sweep and per storm row.
func TestPlotSVG(t *testing.T) {
	f := filepath.Join(t.TempDir(), "p.svg")
	var out, errb bytes.Buffer
	if err := run([]string{"-scenario", "detect", "-profile", "lan,wan", "-policy", "default,socketio", "-conns", "4", "-duration", "3h", "-plot", f}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	texts := map[string]bool{}
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			count[tok.Name.Local]++
		case xml.CharData:
			texts[strings.TrimSpace(string(tok))] = true
		}
	}
	if count["svg"] != 1 || count["clipPath"] != 2 {
		t.Errorf("want one svg with 2 panels' clip paths: %v", count)
	}
	for _, s := range []string{"lan", "wan", "default", "socketio", "detection time p50 (s)"} {
		if !texts[s] {
			t.Errorf("no text %q in the plot", s)
		}
	}
	if want := 2 * len(frontiers()); count["polyline"] < want {
		t.Errorf("%d lines, want at least %d (a sweep per family on each profile)", count["polyline"], want)
	}
}

// -plot adds each detector family's sweep (the frontier) on each profile,
// in the JSON and not in the tables; -fleet=false and -advice change only
// the rows that take advice.
func TestFrontierAndFleetFlags(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"-json", "-scenario", "detect", "-profile", "lan", "-policy", "default,socketio", "-conns", "3", "-duration", "20m", "-plot", filepath.Join(dir, "p.svg")}
	if err := run(args, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Detect   []map[string]any `json:"detect"`
		Frontier []frontierRow    `json:"frontier"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Detect) != 2 {
		t.Fatalf("%d table rows, want 2 (the sweeps are not rows)", len(rep.Detect))
	}
	families := map[string]int{}
	for _, r := range rep.Frontier {
		families[r.Family]++
		if r.Profile != "lan" {
			t.Errorf("a sweep of profile %q", r.Profile)
		}
	}
	for _, f := range frontiers() {
		if families[f.family] != len(f.knobs) {
			t.Errorf("family %q: %d points, want %d", f.family, families[f.family], len(f.knobs))
		}
	}
	bytesOf := func(extra ...string) map[string]float64 {
		var out, errb bytes.Buffer
		if err := run(append([]string{"-json", "-scenario", "detect", "-profile", "mobile", "-policy", "default,socketio", "-conns", "4", "-duration", "2h"}, extra...), &out, &errb); err != nil {
			t.Fatal(err)
		}
		var rep struct{ Detect []detectRow }
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, r := range rep.Detect {
			m[r.Policy] = r.BytesPerConnMin
			if r.Policy == "default" && r.DetectionP50 != nil {
				m["default p50"] = *r.DetectionP50
			}
		}
		return m
	}
	on, off, pinned := bytesOf(), bytesOf("-fleet=false"), bytesOf("-advice", "20s")
	if on["socketio"] != off["socketio"] || pinned["socketio"] != off["socketio"] {
		t.Errorf("socketio's row changed with the fleet: %v %v %v bytes/min", on["socketio"], off["socketio"], pinned["socketio"])
	}
	if pinned["default p50"] < off["default p50"]+5000 {
		t.Errorf("with 20 s of advice pinned, default detects in %v ms (p50), %v ms without: the advice did not reach the detectors", pinned["default p50"], off["default p50"])
	}
	if err := run([]string{"-advice", "20s", "-fleet=false"}, &out, &errb); err == nil {
		t.Error("-advice without the fleet was accepted")
	}
}

// -hostile feeds the fleet from a share of hostile connections: edge ones
// slow default's detection on mobile (the advice rises to the detector's
// bound); bad values are refused.
func TestHostileFlag(t *testing.T) {
	p50 := func(args ...string) float64 {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"-scenario", "detect", "-profile", "mobile", "-policy", "default", "-duration", "2h", "-json"}, args...)
		if err := run(args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		var rep struct {
			Detect []struct {
				DetectionP50 *float64 `json:"detection_p50_ms"`
			} `json:"detect"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Detect) != 1 || rep.Detect[0].DetectionP50 == nil {
			t.Fatalf("%v: %v %s", args, err, out.String())
		}
		return *rep.Detect[0].DetectionP50
	}
	honest, edge := p50(), p50("-hostile", "edge:0.1")
	if edge < 1.5*honest {
		t.Errorf("edge:0.1 detects in %.0f ms (p50), honest %.0f: the hostile observations did not reach the fleet", edge, honest)
	}
	for _, bad := range []string{"edge", "edge:0.6", "slow:0.1", "instant:x"} {
		var out, errb bytes.Buffer
		if err := run([]string{"-hostile", bad}, &out, &errb); err == nil {
			t.Errorf("-hostile %q was accepted", bad)
		}
	}
	var out, errb bytes.Buffer
	if err := run([]string{"-hostile", "edge:0.1", "-fleet=false"}, &out, &errb); err == nil {
		t.Error("-hostile without the fleet was accepted")
	}
}

// Plot text is well-formed XML whatever a name holds.
func TestPlotEscapes(t *testing.T) {
	got := esc("a<b>&\"c\x01\x1fd\te")
	if want := "a&lt;b&gt;&amp;&quot;cd\te"; got != want {
		t.Errorf("esc = %q, want %q", got, want)
	}
	if err := xml.Unmarshal([]byte("<t>"+got+"</t>"), new(struct{})); err != nil {
		t.Errorf("escaped text is not XML: %v", err)
	}
}

// The progress line is drawn only on a terminal: not on /dev/null, a file or
// a buffer.
func TestProgressOnlyOnTerminals(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []io.Writer{null, f, &bytes.Buffer{}} {
		if isTerminal(w) {
			t.Errorf("%T %v counted as a terminal", w, w)
		}
	}
}
