package proptest

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docs/invariants.md lists every invariant of the catalogue, with the same
// sentence, and no other.
func TestCatalogueMatchesDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/invariants.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, inv := range Catalogue() {
		row := "| " + inv.ID + " | " + inv.Name + " | " + inv.Statement + " |"
		if !strings.Contains(text, row) {
			t.Errorf("docs/invariants.md lacks the row\n%s", row)
		}
	}
	// The presence registry's invariants (R1–R6) have their own section,
	// checked by package presence.
	own, _, _ := strings.Cut(text, "\n## Presence registry")
	for _, m := range regexp.MustCompile(`(?m)^\| ([A-Z][0-9]) \|`).FindAllStringSubmatch(own, -1) {
		if invariantName(m[1]) == "unknown" {
			t.Errorf("docs/invariants.md lists %s, which the catalogue does not have", m[1])
		}
	}
}

func TestSelectRejectsUnknownIDs(t *testing.T) {
	r := Verdict(t.Name(), func(tb testing.TB) {
		CheckBackoff(tb, nil, BackoffPromise{Select: Select{Only: []string{"Z9"}}})
	})
	if !r.Failed || !strings.Contains(r.Output, `unknown invariant ID "Z9"`) {
		t.Fatalf("an unknown ID was not reported: %+v", r)
	}
}

func TestPromiseErrorsSayWhatIsWrong(t *testing.T) {
	cases := []struct {
		check func(testing.TB)
		field string
	}{
		{func(tb testing.TB) { CheckMachine(tb, nil, MachinePromise{}) }, "CheckMachine: the constructor is nil"},
		{func(tb testing.TB) { CheckBackoff(tb, nil, BackoffPromise{Min: 2, Max: 1}) }, "BackoffPromise.Max"},
		{func(tb testing.TB) { CheckInterval(tb, nil, IntervalPromise{Min: -1}) }, "IntervalPromise.Min"},
		{func(tb testing.TB) { CheckDetector(tb, nil, DetectorPromise{}) }, "DetectorPromise.Network.Heartbeat"},
		{func(tb testing.TB) { CheckStorm(tb, nil, StormPromise{MaxRatio: 0.5}) }, "StormPromise.MaxRatio"},
	}
	for _, c := range cases {
		r := Verdict(t.Name(), c.check)
		if !r.Failed || !strings.Contains(r.Output, c.field) {
			t.Errorf("want a failure naming %s, got %+v", c.field, r)
		}
	}
	err := DetectorPromise{}.validate()
	var pe *PromiseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPromise) || pe.Field != "DetectorPromise.Network.Heartbeat" {
		t.Errorf("validate: %v, want a *PromiseError for DetectorPromise.Network.Heartbeat", err)
	}
}
