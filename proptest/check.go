package proptest

import (
	"reflect"
	"runtime/debug"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// property is one rapid property, named after the invariants it checks.
type property struct {
	ids []string
	run func(*rapid.T, Select) // Select enables just the selected ids
}

func (p property) name() string {
	parts := make([]string, 0, len(p.ids)+1)
	parts = append(parts, p.ids...)
	parts = append(parts, strings.ReplaceAll(invariantName(p.ids[0]), " ", "_"))
	return strings.Join(parts, "_")
}

// runAll runs each selected property with rapid: as a subtest of a
// *testing.T (so rapid's replay line names it), else one after the other
// on tb, stopping at the first failure.
func runAll(tb testing.TB, sel Select, props []property) {
	tb.Helper()
	for _, p := range props {
		var on Select
		for _, id := range p.ids {
			if sel.on(id) {
				on.Only = append(on.Only, id)
			}
		}
		if len(on.Only) == 0 {
			continue
		}
		prop := func(t *rapid.T) {
			defer func() {
				if v := recover(); v != nil {
					if rapidStop(v) {
						panic(v)
					}
					// A policy called outside a Machine step (a backoff's
					// Next, a bound) panicked: name the property's invariant.
					t.Fatalf("[%s %s] a policy panicked: %v\n%s", on.Only[0], invariantName(on.Only[0]), v, debug.Stack())
				}
			}()
			p.run(t, on)
		}
		if t, ok := tb.(*testing.T); ok {
			t.Run(p.name(), rapid.MakeCheck(prop))
			continue
		}
		rapid.Check(tb, prop)
	}
}

// rapidStop reports whether a recovered panic is rapid's own way of
// stopping a test case (a failure, a skipped draw), which must go on up.
func rapidStop(v any) bool {
	t := reflect.TypeOf(v)
	return t != nil && t.PkgPath() == "pgregory.net/rapid"
}

// promiseFailed reports a promise the harness cannot check.
func promiseFailed(tb testing.TB, err error) bool {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
		return true
	}
	return false
}

// newNil reports a missing constructor.
func newNil(tb testing.TB, check string, isNil bool) bool {
	tb.Helper()
	if isNil {
		tb.Fatal(promiseErr(check, "the constructor is nil: pass a function that returns a fresh policy for one connection"))
	}
	return isNil
}
