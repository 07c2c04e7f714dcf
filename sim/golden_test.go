package sim

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden traces in testdata/")

// goldenRuns are small runs that between them use every delivery model,
// loss model, weather and fault kind.
func goldenRuns() map[string]Config {
	wan, _ := ProfileByName("wan")
	mobile, _ := ProfileByName("mobile")
	dgram := Profile{
		Name: "datagram",
		Link: Symmetric(Dir{
			Delivery:  Datagram,
			Latency:   Latency{Dist: Uniform, Mean: 30 * time.Millisecond, Jitter: 20 * time.Millisecond},
			Loss:      Loss{Rate: 0.05, Burst: 3},
			Duplicate: 0.05, Reorder: 0.1, ReorderDelay: 100 * time.Millisecond,
		}),
		FailEvery: 5 * time.Minute,
		Mix:       Mix{CrashClient: 1, CrashServer: 1, Partition: 1, HalfOpen: 1, CleanClose: 1},
		Outage:    Latency{Dist: Exponential, Mean: time.Minute, Max: 3 * time.Minute},
	}
	p := fixedPreset(5*time.Second, 8*time.Second, 12*time.Second)
	return map[string]Config{
		"wan": {Profile: wan, Preset: p, Conns: 3, Duration: 20 * time.Minute, Seed: 7, Faults: []Fault{
			{At: 3 * time.Minute, Slot: 0, Kind: Partition, Outage: time.Minute},
			{At: 4 * time.Minute, Slot: 1, Kind: HalfOpenUp},
			{At: 5 * time.Minute, Slot: 2, Kind: Pause, Outage: 40 * time.Second},
			{At: 12 * time.Minute, Kind: ServerRestart, Outage: 5 * time.Second},
		}},
		"mobile":   {Profile: mobile, Preset: p, Conns: 3, Duration: 30 * time.Minute, Seed: 11},
		"datagram": {Profile: dgram, Preset: serverPings(10*time.Second, 25*time.Second), Conns: 3, Duration: 30 * time.Minute, Seed: 3, AcceptRate: 1},
	}
}

// TestGoldenTraces pins the simulator's behaviour byte for byte: a change
// to the event loop, the links or the measurement shows up as a diff.
// Run with -update to accept a deliberate change.
func TestGoldenTraces(t *testing.T) {
	for name, cfg := range goldenRuns() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			cfg.Trace = &buf
			if _, err := Run(cfg); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".trace")
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./sim -run Golden -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				got := bytes.Split(buf.Bytes(), []byte("\n"))
				exp := bytes.Split(want, []byte("\n"))
				for i := range min(len(got), len(exp)) {
					if !bytes.Equal(got[i], exp[i]) {
						t.Fatalf("trace differs from %s at line %d:\n got: %s\nwant: %s", path, i+1, got[i], exp[i])
					}
				}
				t.Fatalf("trace has %d lines, %s has %d", len(got), path, len(exp))
			}
		})
	}
}

// TestSameSeedSameResult: two runs of one Config agree in every measure
// and every trace byte; another seed gives another run.
func TestSameSeedSameResult(t *testing.T) {
	cfg := goldenRuns()["mobile"]
	cfg.Duration = 2 * time.Hour
	run := func(seed uint64) (string, *Result) {
		var buf bytes.Buffer
		c := cfg
		c.Seed, c.Trace = seed, &buf
		r, err := Run(c)
		if err != nil {
			t.Fatal(err)
		}
		return buf.String(), r
	}
	t1, r1 := run(5)
	t2, r2 := run(5)
	t3, _ := run(6)
	if t1 != t2 {
		t.Fatal("same seed, different traces")
	}
	if r1.Events != r2.Events || r1.Detection.Time != r2.Detection.Time || r1.False.Deads != r2.False.Deads || r1.Cost.Link != r2.Cost.Link {
		t.Fatalf("same seed, different results:\n%+v\n%+v", r1, r2)
	}
	if t1 == t3 {
		t.Fatal("different seeds gave the same trace")
	}
}
