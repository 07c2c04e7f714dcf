package mem_test

import (
	"context"
	"errors"
	"testing"

	"github.com/benbjohnson/clock"
	"go.uber.org/goleak"

	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/conformance"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

func memEnd(c *mem.Conn) conformance.End {
	return conformance.End{
		Conn:             c,
		Bind:             func(ev transport.Events) error { c.Bind(ev); return nil },
		SendData:         func(context.Context) error { return c.SendData() },
		Abort:            func() { _ = c.Close(errors.New("mem: aborted")) },
		PingsCarrySeq:    true,
		PingsCarryAdvice: true,
		SendsPongs:       true,
	}
}

// TestConformance runs the transport conformance suite against the
// in-memory pipe, on the real clock.
func TestConformance(t *testing.T) {
	defer goleak.VerifyNone(t)
	conformance.Run(t, conformance.Harness{
		Name: "mem",
		NewPair: func(t *testing.T) (a, b conformance.End) {
			x, y := mem.Pipe(clock.New())
			return memEnd(x), memEnd(y)
		},
	})
}
