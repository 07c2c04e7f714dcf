// Package network is the network model that the simulator (package sim)
// and the property harness (package proptest) share: what one direction
// of a connection does to a packet, and the faults that cut a connection.
//
// A Dir is one direction: a latency distribution (Latency), a loss
// process (Loss: independent, or Gilbert–Elliott bursts) and a delivery
// model (Stream, which is TCP under a WebSocket: nothing lost, order kept,
// a lost transmission repeated after Linux's retransmission timeout;
// Datagram: loss is loss, with optional duplicates and reordering).
// Dir.Transmit decides when a packet arrives, given the direction's State;
// it draws from the caller's seeded math/rand/v2 source and reads no
// clock, so a run replays exactly.
//
// FaultKind names the faults both worlds draw: crashes of either side,
// partitions, half-open links in either direction, clean closes, server
// restarts and local pauses. What a fault does to the endpoints (who keeps
// a dead connection, when dials fail again) is each driver's part; the
// kinds, and which of them are failures a detector must find, are shared
// so that a fault added to one world is named in the other.
package network
