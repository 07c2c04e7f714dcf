package proptest

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/presets.md from the verdicts found")

// presetNetwork is the healthy link the presets are held to: a round trip
// of at most 300 ms (150 ms each way, as policy's own preset test), each
// preset at its own heartbeat cadence.
var presetNetwork = policy.NetworkBound{MaxRTT: 300 * time.Millisecond}

// matrixColumns are the invariants the preset table reports: all that
// CheckPreset checks (M4 and L4 are checked once, not per preset).
var matrixColumns = []string{M1, M2, M3, L1, L2, L3, D1, C1, A1, A2, E1, F1, P1, P2, B1, B2, B3, B4, B5, B6, B7, B8}

// pinRapid makes rapid's runs in this test replay the same cases every
// time, so that the verdicts are stable, at a quarter of the default
// budget, with little time spent shrinking (only the verdicts count here),
// and keeps expected failures from writing fail files. Flags given on the
// command line win: a deep pass sets -rapid.checks.
func pinRapid(t *testing.T) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pin := func(name, value string) {
		if set[name] {
			return
		}
		old := flag.Lookup(name).Value.String()
		if err := flag.Set(name, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = flag.Set(name, old) })
	}
	pin("rapid.seed", "20261125")
	pin("rapid.checks", "25")
	pin("rapid.shrinktime", "100ms")
	pin("rapid.nofailfile", "true")
}

// presetVerdict holds p to its known violations: the rest must pass, and
// each known one must still fail on its own. A new violation found while
// checking the rest is added and the rest checked again. It returns the
// broken invariants, the ones that could not be checked, and why.
func presetVerdict(t *testing.T, p policy.Preset, known []string) (broken, unchecked []string, why map[string]string) {
	why = map[string]string{}
	run := func(sel Select) Outcome {
		return Verdict(t.Name(), func(tb testing.TB) {
			CheckPreset(tb, p, PresetPromise{Network: presetNetwork, NoSuspect: true, Select: sel})
		})
	}
	note := func(r Outcome) {
		i := strings.Index(r.Output, "["+r.Invariant+" ")
		why[r.Invariant], _, _ = strings.Cut(r.Output[i:], "\n")
	}
	skip := slices.Clone(known)
	for range len(catalogue) {
		r := run(Select{Skip: skip})
		if _, rest, ok := strings.Cut(r.Output, "C1 not checked: "); ok && !slices.Contains(unchecked, C1) {
			unchecked = append(unchecked, C1)
			why[C1+"?"], _, _ = strings.Cut(rest, "\n")
		}
		if !r.Failed {
			break
		}
		if r.Invariant == "" || slices.Contains(skip, r.Invariant) {
			t.Fatalf("preset %s failed without naming a new invariant:\n%s", p.Name, r.Output)
		}
		skip = append(skip, r.Invariant)
		note(r)
	}
	for _, id := range skip {
		if !slices.Contains(known, id) {
			broken = append(broken, id)
			continue
		}
		if r := run(Select{Only: []string{id}}); r.Failed {
			if r.Invariant != id {
				t.Fatalf("preset %s, checking only %s, failed with %q:\n%s", p.Name, id, r.Invariant, r.Output)
			}
			broken = append(broken, id)
			note(r)
		}
	}
	return broken, unchecked, why
}

// goldenBroken reads the invariants each preset breaks from the table.
func goldenBroken(table string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != len(matrixColumns)+3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		for i, id := range matrixColumns {
			if strings.TrimSpace(cells[i+2]) == "✗" {
				out[name] = append(out[name], id)
			}
		}
	}
	return out
}

// TestPresetVerdicts runs every registered preset through the harness and
// compares which invariants each honours with testdata/presets.md (-update
// rewrites it); docs/invariants.md must carry the same table.
func TestPresetVerdicts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every preset through every check")
	}
	pinRapid(t)
	const golden = "testdata/presets.md"
	want, err := os.ReadFile(golden)
	if err != nil && !*update {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	known := goldenBroken(string(want))
	if *update {
		known = nil // find every violation afresh
	}
	var table strings.Builder
	table.WriteString("| preset | " + strings.Join(matrixColumns, " | ") + " |\n")
	table.WriteString("| --- |" + strings.Repeat(" :-: |", len(matrixColumns)) + "\n")
	var notes strings.Builder
	names := policy.Names()
	type result struct {
		broken, unchecked []string
		why               map[string]string
	}
	results := make([]result, len(names))
	t.Run("presets", func(t *testing.T) {
		for i, name := range names {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p, err := policy.Lookup(name)
				if err != nil {
					t.Fatal(err)
				}
				results[i].broken, results[i].unchecked, results[i].why = presetVerdict(t, p, known[name])
			})
		}
	})
	for i, name := range names {
		broken, unchecked, why := results[i].broken, results[i].unchecked, results[i].why
		row := []string{"`" + name + "`"}
		for _, id := range matrixColumns {
			switch {
			case slices.Contains(broken, id):
				row = append(row, "✗")
			case slices.Contains(unchecked, id):
				row = append(row, "–")
			default:
				row = append(row, "✓")
			}
		}
		table.WriteString("| " + strings.Join(row, " | ") + " |\n")
		for _, id := range broken {
			fmt.Fprintf(&notes, "- `%s` %s\n", name, strings.TrimSpace(why[id]))
		}
		if w, ok := why[C1+"?"]; ok {
			fmt.Fprintf(&notes, "- `%s` C1 not checked: %s\n", name, strings.TrimSpace(w))
		}
	}
	t.Logf("why:\n%s", notes.String())
	got := table.String()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		want = []byte(got)
	}
	if string(want) != got {
		t.Errorf("the presets' verdicts changed; if that is right, run go test ./proptest -run TestPresetVerdicts -update and copy the table into docs/invariants.md. Got:\n%s", got)
	}
	doc, err := os.ReadFile("../docs/invariants.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), table.String()) {
		t.Errorf("docs/invariants.md does not carry the current preset table:\n%s", table.String())
	}
}
