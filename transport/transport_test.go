package transport

import (
	"context"
	"errors"
	"testing"
)

type nopConn struct{}

func (nopConn) Send(context.Context, Frame) error { return nil }
func (nopConn) Close(error) error                 { return nil }

type nopEvents struct{}

func (nopEvents) Frame(Frame)  {}
func (nopEvents) Closed(error) {}

func TestAcceptedBindsOnce(t *testing.T) {
	binds := 0
	d := Accepted(func(ev Events) (Conn, error) {
		binds++
		return nopConn{}, nil
	})
	if c, err := d.Dial(context.Background(), nopEvents{}); err != nil || c == nil {
		t.Fatalf("first dial: %v %v", c, err)
	}
	if _, err := d.Dial(context.Background(), nopEvents{}); !errors.Is(err, ErrAlreadyBound) {
		t.Fatalf("second dial: %v", err)
	}
	if binds != 1 {
		t.Fatalf("bound %d times", binds)
	}
}

func TestFrameKindNames(t *testing.T) {
	for k, want := range map[FrameKind]string{Data: "data", Ping: "ping", Pong: "pong", 0: "frame(?)"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
}
