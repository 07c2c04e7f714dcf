package sim

import (
	"fmt"
	"strconv"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/transport"
)

// stamp formats the current virtual time as seconds with microseconds.
func (s *engine) stamp() string {
	return strconv.FormatFloat(float64(s.now)/1e9, 'f', 6, 64)
}

func (s *engine) tracef(format string, a ...any) {
	fmt.Fprintf(s.tr, format, a...)
}

// trace writes one line for an event about to be handled.
func (s *engine) trace(e *event) {
	if s.tr == nil {
		return
	}
	switch e.kind {
	case evFrame:
		s.tracef("%s slot %d %v gen %d %v seq %d\n", s.stamp(), e.slot, e.side, e.gen, transport.FrameKind(e.fk), e.aux)
	case evFault:
		// traced by fault, which knows the kind
	default:
		s.tracef("%s slot %d %v gen %d %v\n", s.stamp(), e.slot, e.side, e.gen, e.kind)
	}
}

func (s *engine) traceChange(i int32, idx side, a *fsm.Action) {
	s.tracef("%s slot %d %v %v -> %v (%v)", s.stamp(), i, idx, a.From, a.To, a.Reason)
	if a.To == fsm.Reconnecting {
		s.tracef(" in %v", a.Delay)
	}
	s.tracef("\n")
}
