package fsm_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
)

// stuckSender is a connection whose heartbeat writes block until their
// context ends (a peer that stopped reading); it records its close reason.
type stuckSender struct {
	mu     sync.Mutex
	reason error
	closed bool
}

func (s *stuckSender) Send(ctx context.Context, _ transport.Frame) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *stuckSender) Close(reason error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed, s.reason = true, reason
	}
	return nil
}

// TestCloseDuringSendIsAClose: Close while a heartbeat write is blocked
// closes the connection as a user close (1000 on a WebSocket), not as the
// send failure the cancelled write returns (which read as 1001, and to a
// presence server as a lost connection rather than a leave).
func TestCloseDuringSendIsAClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn := &stuckSender{}
		var changes []fsm.Change
		var mu sync.Mutex
		d, err := fsm.Run(context.Background(), fsm.DriverConfig{
			Dialer: transport.DialerFunc(func(context.Context, transport.Events) (transport.Conn, error) { return conn, nil }),
			OnChange: func(c fsm.Change) {
				mu.Lock()
				changes = append(changes, c)
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // idle: the client pings, and the write blocks
		synctest.Wait()
		_ = d.Close()
		conn.mu.Lock()
		reason := conn.reason
		conn.mu.Unlock()
		if !errors.Is(reason, fsm.ErrClosed) {
			t.Errorf("closed for %v, want fsm.ErrClosed", reason)
		}
		mu.Lock()
		defer mu.Unlock()
		if last := changes[len(changes)-1]; last.To != fsm.Closed || last.Reason != fsm.ReasonUserClose {
			t.Errorf("last change %v, want → closed (user close)", last)
		}
	})
}
