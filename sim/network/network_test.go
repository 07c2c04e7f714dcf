package network

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Edge reaches its top often and never leaves its range: proptest relies
// on it to put the worst delay a bound allows in front of a detector.
func TestEdgeReachesItsBound(t *testing.T) {
	l := Latency{Dist: Edge, Mean: 300 * time.Millisecond, Jitter: 200 * time.Millisecond}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 10_000
	top := 0
	for range n {
		v := time.Duration(l.Sample(r))
		if v < 100*time.Millisecond || v > 500*time.Millisecond {
			t.Fatalf("sample %v outside [100ms, 500ms]", v)
		}
		if v == 500*time.Millisecond {
			top++
		}
	}
	if top < n/5 || top > n*3/10 {
		t.Fatalf("%d of %d samples at the bound, want about a quarter", top, n)
	}
}

func TestFaultKinds(t *testing.T) {
	kinds := FaultKinds()
	if len(kinds) != 8 {
		t.Fatalf("%d kinds, want 8", len(kinds))
	}
	failures := 0
	for _, k := range kinds {
		if !k.Valid() || k.String() == "fault(?)" {
			t.Errorf("kind %d: valid %v, name %q", k, k.Valid(), k)
		}
		up, down := k.Cuts()
		if k.Failure() {
			failures++
			if !up && !down {
				t.Errorf("%v is a failure that cuts nothing", k)
			}
		} else if up || down {
			t.Errorf("%v is no failure but cuts up %v, down %v", k, up, down)
		}
	}
	if failures != 5 {
		t.Errorf("%d failures, want 5 (two crashes, a partition, two half-opens)", failures)
	}
	if FaultKind(0).Valid() || FaultKind(len(kinds)+1).Valid() {
		t.Error("kinds outside the list are valid")
	}
}
