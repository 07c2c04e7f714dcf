package nbiows

import (
	"testing"
	"time"
)

// An idle connection's state is one allocation: the Done channel is made
// only when someone waits for the end.
func TestNewConnAllocatesOnce(t *testing.T) {
	s := &Server{} // newConn only keeps it
	if n := testing.AllocsPerRun(100, func() {
		if _, err := newConn(s, "", Options{}); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Fatalf("newConn: %v allocations, want 1", n)
	}
}

// Done, asked for before or after the end, is closed by it.
func TestDoneBeforeAndAfterEnd(t *testing.T) {
	s := newServer(t, ServerConfig{})
	c, _ := pair(t, s, nil, Options{}, nil)
	early := c.Done()
	c.CloseNow()
	for _, ch := range []<-chan struct{}{early, c.Done()} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("Done not closed 10 s after the end")
		}
	}
}
