package presence

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/policy"
	"github.com/heartbeat-go/heartbeat/transport"
	"github.com/heartbeat-go/heartbeat/transport/mem"
)

// A client of a hub whose fleet has seen 20 s silences learns it from the
// hub's first ping: its detector waits 20 s before a verdict on its very
// first connection. Without the fleet it waits its own few seconds. The
// hub feeds the fleet from the connection's frames.
func TestHubFleetAdvisesNewConnections(t *testing.T) {
	for _, off := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			fl := &policy.Fleet{MinTime: time.Minute}
			for range 1000 {
				fl.Observe("cell", time.Now(), 20*time.Second)
				fl.Observe("wifi", time.Now(), 5*time.Second)
			}
			want := fl.Advice("cell")
			if want < 20*time.Second || want > 22*time.Second {
				t.Fatalf("trained on 20 s silences, the fleet advises %v", want)
			}
			cfg := HubConfig{Fleet: fl, FleetClass: "net"}
			if off {
				cfg.Fleet = NoFleet
			}
			h, _ := newTestHub(t, cfg)
			dial := func(net string) (*policy.Adaptive, *fsm.Driver) {
				det := &policy.Adaptive{}
				d, err := fsm.Run(context.Background(), fsm.DriverConfig{
					Config: fsm.Config{Detector: det},
					Dialer: transport.DialerFunc(func(ctx context.Context, ev transport.Events) (transport.Conn, error) {
						a, b := mem.Pipe(nil)
						a.Bind(ev)
						_, err := h.Watch(memConn{b}, h.NewConnID(), Identity{User: "u", Session: net, Meta: Meta{"net": net}})
						return a, err
					}),
				})
				if err != nil {
					t.Fatal(err)
				}
				return det, d
			}
			det, d := dial("cell")
			_, d2 := dial("lan") // a class the fleet has not seen
			time.Sleep(3 * time.Minute)
			synctest.Wait()
			_, dead := det.Timeouts()
			switch {
			case !off && dead != want:
				t.Errorf("with the fleet: the client's dead timeout is %v, want the advised %v", dead, want)
			case off && dead >= 20*time.Second:
				t.Errorf("without the fleet: the client's dead timeout is %v, want its own (under 20s)", dead)
			}
			if a := fl.Advice("lan"); !off && (a == 0 || a > 10*time.Second) {
				t.Errorf("after 3 min of 5 s heartbeats in a new class the hub fed the fleet, which advises %v, want about 5 s", a)
			}
			if off != (h.Fleet() == nil) {
				t.Errorf("fleet off %v, Fleet() %v", off, h.Fleet())
			}
			d.Close()
			d2.Close()
			shutdown(t, h)
		})
	}
}
