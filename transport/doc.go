// Package transport holds the small interfaces a connection must offer the
// heartbeat, and nothing about liveness.
//
// A Conn sends heartbeat frames and closes; an Events sink (the heartbeat
// driver) hears every inbound frame and the connection's end; a Dialer makes
// Conns. Adapters for WebSocket libraries live in sub-packages; package mem
// is an in-memory pair for tests that can drop, delay and cut traffic.
//
// The usage loop of an adapter is:
//
//	func (a *adapter) readLoop() {
//		for {
//			msg, err := a.ws.Read()
//			if err != nil {
//				a.events.Closed(err)
//				return
//			}
//			a.events.Frame(transport.Frame{Kind: transport.Data})
//			a.deliverToApplication(msg)
//		}
//	}
package transport
