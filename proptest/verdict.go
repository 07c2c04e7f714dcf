package proptest

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Outcome is what a check concluded, as Verdict reports it.
type Outcome struct {
	// Failed: some invariant broke (or the promise could not be checked).
	Failed bool
	// Skipped: the check skipped itself.
	Skipped bool
	// Invariant is the catalogue ID of the first broken invariant the
	// check reported, or "" if none was named.
	Invariant string
	// Output is everything the check logged, including rapid's minimal
	// counter-example and the line that replays it.
	Output string
}

// Verdict runs check against a stand-in for testing.TB and returns what it
// concluded instead of failing a test: for tools that tabulate verdicts,
// and for tests that require a broken policy to be caught. name names the
// run (rapid files a failing case under testdata/rapid/name unless
// -rapid.nofailfile is set).
func Verdict(name string, check func(t testing.TB)) Outcome {
	tb := &standIn{name: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(tb)
	}()
	<-done
	tb.mu.Lock()
	defer tb.mu.Unlock()
	r := Outcome{Failed: tb.failed, Skipped: tb.skipped, Output: tb.out.String()}
	if m := brokenID.FindStringSubmatch(r.Output); m != nil {
		r.Invariant = m[1]
	}
	return r
}

var brokenID = regexp.MustCompile(`\[([A-Z][0-9]) [a-z]`)

// standIn implements testing.TB for Verdict: it records instead of
// failing, and ends the check's goroutine where a test would stop.
type standIn struct {
	testing.TB // never called: it only supplies testing.TB's unexported method

	name    string
	mu      sync.Mutex
	failed  bool
	skipped bool
	out     strings.Builder
}

func (s *standIn) record(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out.WriteString(msg)
	if !strings.HasSuffix(msg, "\n") {
		s.out.WriteByte('\n')
	}
}

func (s *standIn) Helper()                           {}
func (s *standIn) Name() string                      { return s.name }
func (s *standIn) Log(args ...any)                   { s.record(fmt.Sprint(args...)) }
func (s *standIn) Logf(format string, args ...any)   { s.record(fmt.Sprintf(format, args...)) }
func (s *standIn) Error(args ...any)                 { s.Fail(); s.Log(args...) }
func (s *standIn) Errorf(format string, args ...any) { s.Fail(); s.Logf(format, args...) }
func (s *standIn) Fatal(args ...any)                 { s.Error(args...); s.FailNow() }
func (s *standIn) Fatalf(format string, args ...any) { s.Errorf(format, args...); s.FailNow() }
func (s *standIn) FailNow()                          { s.Fail(); runtime.Goexit() }
func (s *standIn) Skip(args ...any)                  { s.Log(args...); s.SkipNow() }
func (s *standIn) Skipf(format string, args ...any)  { s.Logf(format, args...); s.SkipNow() }

func (s *standIn) Fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
}

func (s *standIn) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *standIn) SkipNow() {
	s.mu.Lock()
	s.skipped = true
	s.mu.Unlock()
	runtime.Goexit()
}

func (s *standIn) Skipped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}
