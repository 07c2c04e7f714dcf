// Package outputtest lets the examples' tests wait for what a command
// prints.
package outputtest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output is an io.Writer that tells when it contains a string.
type Output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

// New returns an empty Output.
func New() *Output { return &Output{wake: make(chan struct{}, 1)} }

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return o.buf.Write(p)
}

// WaitFor waits up to 5 s for s to have been written, failing the test
// otherwise.
func (o *Output) WaitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		o.mu.Lock()
		ok := strings.Contains(o.buf.String(), s)
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-o.wake:
		case <-deadline:
			o.mu.Lock()
			defer o.mu.Unlock()
			t.Fatalf("no %q in output:\n%s", s, o.buf.String())
		}
	}
}
