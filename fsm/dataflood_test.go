package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/transport"
)

// With DataRate set, a peer that sends messages faster than it, beyond the
// burst, is closed for a data flood; one that keeps to the rate, in bursts
// the limit allows, never is; and without DataRate nothing is counted.
func TestDataFlood(t *testing.T) {
	cfg := testConfig()
	cfg.DataRate, cfg.DataBurst = 100, 20
	r := newRig(t, cfg).connected()
	sent := 0
	for i := 0; i < 10000 && r.m.State() == Alive; i++ { // 1 per 0.1 ms: 100 times the rate
		r.at(time.Second+time.Duration(i)*100*time.Microsecond).frame(transport.Data, 0)
		sent++
	}
	dead, ok := change(r.all, Dead)
	if !ok || dead.Reason != ReasonDataFlood || !errors.Is(dead.Err, ErrDataFlood) {
		t.Fatalf("data flood not stopped: %+v", dead)
	}
	// 10,000/s against 100/s with a burst of 20: about 21 get through.
	if sent < 20 || sent > 25 {
		t.Errorf("%d messages before the flood was stopped, want about 21", sent)
	}

	// At the rate, in bursts of 20 every 200 ms, for an hour: no flood.
	r = newRig(t, cfg).connected()
	for b := range 18000 {
		at := time.Second + time.Duration(b)*200*time.Millisecond
		for range 20 {
			r.at(at).frame(transport.Data, 0)
		}
		r.at(at).frame(transport.Ping, 0) // keep the detector fed
	}
	if r.m.State() != Alive {
		t.Fatalf("messages within the rate convicted as a flood: %v", r.m.State())
	}

	// Off by default.
	r = newRig(t, testConfig()).connected()
	for i := range 100000 {
		r.at(time.Second+time.Duration(i)*time.Microsecond).frame(transport.Data, 0)
	}
	if r.m.State() != Alive {
		t.Fatalf("no DataRate, yet %v", r.m.State())
	}

	for _, bad := range []Config{{DataRate: -1}, {DataRate: 10, DataBurst: -1}} {
		bad.Role = Server
		if _, err := NewMachine(bad); err == nil {
			t.Errorf("NewMachine(%+v) accepted", bad)
		}
	}
}

// DataByteRate meters the bytes of the peer's messages (Frame.Size) the
// same way: a peer sending 1 MB/s against 64 KiB/s with a 256 KiB burst is
// closed after about 256 KiB; one at the rate is not, and small messages
// fast enough to pass DataRate's absence still count their bytes.
func TestDataByteFlood(t *testing.T) {
	cfg := testConfig()
	cfg.DataByteRate, cfg.DataByteBurst = 64<<10, 256<<10
	r := newRig(t, cfg).connected()
	data := func(size int) { r.step(Input{Kind: FrameIn, Frame: transport.Frame{Kind: transport.Data, Size: size}}) }
	sent := 0
	for i := 0; i < 10000 && r.m.State() == Alive; i++ { // 1 KiB per ms: 1 MB/s
		r.at(time.Second + time.Duration(i)*time.Millisecond)
		data(1 << 10)
		sent += 1 << 10
	}
	dead, ok := change(r.all, Dead)
	if !ok || dead.Reason != ReasonDataFlood || !errors.Is(dead.Err, ErrDataFlood) {
		t.Fatalf("byte flood not stopped: %+v", dead)
	}
	// The burst plus the rate's refill over the ~0.27 s it took.
	if sent < 256<<10 || sent > 300<<10 {
		t.Errorf("%d bytes before the flood was stopped, want about 270 KiB", sent)
	}

	// 64 KiB a second in one message, for an hour: no flood.
	r = newRig(t, cfg).connected()
	for s := range 3600 {
		r.at(time.Second + time.Duration(s)*time.Second)
		data(64 << 10)
		r.frame(transport.Ping, 0)
	}
	if r.m.State() != Alive {
		t.Fatalf("bytes at the rate convicted as a flood: %v", r.m.State())
	}

	// Messages sent at the rate while the machine was not stepped arrive
	// together: credited from the previous step, as DataRate's are.
	cfg2 := testConfig()
	cfg2.DataByteRate, cfg2.DataByteBurst = 64<<10, 64<<10
	r = newRig(t, cfg2).connected()
	r.at(time.Second)
	data(64 << 10)
	r.at(3 * time.Second) // 2 s later: two messages' worth at the rate
	data(64 << 10)
	data(64 << 10)
	if r.m.State() != Alive {
		t.Fatalf("two messages sent at the rate, arriving together, convicted as a flood: %v", r.m.State())
	}

	// Unknown sizes are not metered.
	r = newRig(t, cfg).connected()
	for i := range 10000 {
		r.at(time.Second+time.Duration(i)*time.Microsecond).frame(transport.Data, 0)
	}
	if r.m.State() != Alive {
		t.Fatalf("frames of unknown size metered: %v", r.m.State())
	}

	for _, bad := range []Config{{DataByteRate: -1}, {DataByteRate: 10, DataByteBurst: -1}} {
		bad.Role = Server
		if _, err := NewMachine(bad); err == nil {
			t.Errorf("NewMachine(%+v) accepted", bad)
		}
	}
}
