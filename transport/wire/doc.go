// Package wire holds the heartbeat's wire formats.
//
// Two formats live here. The control payload (AppendControl, ParseControl)
// is what an adapter puts in a WebSocket ping: the sequence number and,
// from a server, its reconnect-window advice, within the 125 bytes RFC 6455
// §5.5 allows. The Message is the application-level heartbeat, sent as an
// ordinary data message, for peers that cannot send control frames (browsers)
// or that want heartbeats to carry data. It has a JSON form for readability
// and a binary form for size, both versioned; the two sides agree on the
// form through the WebSocket subprotocol (SubprotocolJSON or
// SubprotocolBinary).
//
// Decoders never trust a length the peer claims: every length is checked
// against the bytes actually received and against a fixed limit before
// anything is copied, so a decoder never allocates or echoes more than it
// was given. Malformed input yields a *DecodeError; the caller drops the
// message and keeps the connection.
//
// The usage loop of an adapter in application-level mode:
//
//	for {
//		typ, msg, err := ws.ReadMessage()
//		if err != nil {
//			ev.Closed(err)
//			return
//		}
//		if !wire.IsHeartbeat(msg) {
//			ev.Frame(transport.Frame{Kind: transport.Data})
//			deliver(typ, msg)
//			continue
//		}
//		m, err := wire.Decode(msg)
//		if err != nil {
//			ev.Frame(transport.Frame{Kind: transport.Data}) // still evidence
//			continue
//		}
//		ev.Frame(m.Frame(echo[:0]))
//	}
package wire
