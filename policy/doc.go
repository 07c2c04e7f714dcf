// Package policy decides when to ping, when the peer is suspect and dead,
// and how long to wait before redialling. It knows nothing of transports.
//
// A Machine (package fsm) owns one instance of each policy per connection
// and asks them:
//
//	det.Start(now)                 // a connection was established
//	det.Observe(now, rtt)          // a frame arrived
//	suspect, dead := det.Timeouts() // how much silence is too much
//	next := iv.NextPing(link)      // when to ping
//	delay, err := bo.Next(retry)   // how long to wait before dial n
//
// Presets bundle both sides' policies under a name; Lookup finds one, Names
// lists them.
package policy
