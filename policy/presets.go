package policy

import (
	"math/rand/v2"
	"time"
)

// The presets below reproduce well-known systems' defaults, each side as the
// system runs it: who pings, how often, when it gives up, how it redials.
// Two simplifications hold throughout: any inbound frame counts as evidence
// (several of these systems reset their timers only on their own heartbeat
// messages), and a system without a "suspect" stage gets suspect = dead, so
// its timeline is unchanged. Sources are files of each project's repository.

const (
	sec = time.Second
	ms  = time.Millisecond
)

func init() {
	for _, p := range builtin() {
		Register(p)
	}
}

func builtin() []Preset {
	return []Preset{
		// gorilla/websocket examples/chat/client.go: the server's write pump
		// pings every pingPeriod = pongWait·9/10 = 54 s whatever else it
		// writes; the pong handler pushes the read deadline to now + pongWait
		// (60 s). writeWait (10 s) bounds writes, the driver's job
		// (fsm.DefaultWriteTimeout). The example's browser client runs no
		// check and does not reconnect; the client here is a Go client
		// applying the same pongWait to the server's pings, redialling after
		// 1 s so that long runs keep measuring.
		{
			Name:   "gorilla",
			Source: "gorilla/websocket examples/chat/client.go: server pings every 54 s, dead 60 s (pongWait) after the last frame; client mirrors pongWait, redials after 1 s (not in the example)",
			Pings:  Cadence{Server: 54 * sec},
			Client: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 60 * sec, DeadAfter: 60 * sec}, Never{}, &Constant{Delay: sec}}
			},
			Server: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 60 * sec, DeadAfter: 60 * sec}, &Every{Period: 54 * sec}, nil}
			},
		},
		// Socket.IO v4 / engine.io: packages/engine.io/lib/server.ts
		// (pingInterval 25000, pingTimeout 20000) and socket.ts: the server
		// pings, and closes if no pong comes within pingTimeout of its ping,
		// i.e. 45 s after the previous pong; engine.io-client socket.ts
		// closes after pingInterval + pingTimeout (45 s) without a ping, and
		// never pings itself (a client ping is "invalid heartbeat
		// direction"). socket.io-client lib/manager.ts and contrib/backo2.ts:
		// reconnectionDelay 1000, reconnectionDelayMax 5000,
		// randomizationFactor 0.5, factor 2, unlimited attempts.
		{
			Name:   "socketio",
			Source: "engine.io server.ts/socket.ts (pingInterval 25 s, pingTimeout 20 s, server pings), engine.io-client socket.ts (dead after 45 s without a ping), socket.io-client manager.ts + backo2.ts (1 s → 5 s, factor 2, randomization 0.5)",
			Pings:  Cadence{Server: 25 * sec},
			Client: func(r *rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 45 * sec, DeadAfter: 45 * sec}, Never{},
					&Exponential{Base: sec, Max: 5 * sec, Multiplier: 2, Jitter: 0.5, Rand: r}}
			},
			Server: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 45 * sec, DeadAfter: 45 * sec}, &Every{Period: 25 * sec}, nil}
			},
		},
		// ASP.NET Core SignalR: src/SignalR/server/Core/src/HubOptionsSetup.cs
		// (KeepAliveInterval 15 s, ClientTimeoutInterval 30 s); the JS client
		// (keepAliveIntervalInMilliseconds 15 s, serverTimeoutInMilliseconds
		// 30 s); DefaultReconnectPolicy.ts (0, 2, 10, 30 s, then stop; used
		// with withAutomaticReconnect()). SignalR's pings are one-way and sent
		// when a side has not sent for 15 s; here each side pings when it has
		// heard nothing for 15 s and the peer pongs, so about one ping and
		// one pong cross an idle line every 15 s, as in SignalR.
		{
			Name:   "signalr",
			Source: "SignalR HubOptionsSetup.cs (KeepAliveInterval 15 s, ClientTimeoutInterval 30 s), JS client (ping 15 s, serverTimeout 30 s), DefaultReconnectPolicy.ts (0, 2, 10, 30 s, stop)",
			Pings:  Cadence{Client: 15 * sec, Server: 15 * sec},
			Client: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 30 * sec, DeadAfter: 30 * sec}, &Idle{Every: 15 * sec},
					&Table{Delays: []time.Duration{0, 2 * sec, 10 * sec, 30 * sec}}}
			},
			Server: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 30 * sec, DeadAfter: 30 * sec}, &Idle{Every: 15 * sec}, nil}
			},
		},
		// Phoenix: assets/js/phoenix/socket.js pings every heartbeatIntervalMs
		// (30 000) and tears down when the previous heartbeat is still
		// unanswered at the next tick, i.e. 60 s after the ping before it;
		// reconnectAfterMs 10, 50, 100, 150, 200, 250, 500, 1000, 2000, then
		// 5000, no jitter. The server (Phoenix.Transports.WebSocket :timeout,
		// 60 000 ms) closes 60 s after it last received data and never pings.
		{
			Name:   "phoenix",
			Source: "phoenix socket.js (heartbeat 30 s, unanswered at the next tick = dead; reconnectAfterMs 10 ms … 2 s, then 5 s), Phoenix.Transports.WebSocket timeout 60 s (server)",
			Pings:  Cadence{Client: 30 * sec},
			Client: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 60 * sec, DeadAfter: 60 * sec}, &Every{Period: 30 * sec},
					&Table{Delays: []time.Duration{10 * ms, 50 * ms, 100 * ms, 150 * ms, 200 * ms, 250 * ms, 500 * ms, sec, 2 * sec, 5 * sec}, Repeat: true}}
			},
			Server: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 60 * sec, DeadAfter: 60 * sec}, Never{}, nil}
			},
		},
		// npm ws, README.md "How to detect and close broken connections": one
		// server-wide interval sweeps every 30 000 ms, terminating a client
		// whose pong has not arrived since the previous sweep and pinging the
		// others, so a connection meets its first sweep at a uniformly random
		// phase and dies 60 s after its last pong; the README's client
		// terminates 30 000 + 1000 ms after the last ping. ws has no
		// reconnect; the client uses reconnecting-websocket's defaults
		// (reconnecting-websocket.ts: minReconnectionDelay 1000 + random·4000
		// drawn once, growth 1.3, max 10 000).
		{
			Name:   "ws",
			Source: "websockets/ws README.md isAlive sweep (30 s; dead after one missed sweep; client dead 31 s after a ping), reconnecting-websocket.ts defaults for the client's redial (1–5 s, ×1.3, max 10 s)",
			Pings:  Cadence{Server: 30 * sec},
			Client: func(r *rand.Rand) Set {
				base := uniform(r, float64(sec), float64(5*sec))
				return Set{&Fixed{SuspectAfter: 31 * sec, DeadAfter: 31 * sec}, Never{},
					&Exponential{Base: base, Max: 10 * sec, Multiplier: 1.3}}
			},
			Server: func(r *rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 60 * sec, DeadAfter: 60 * sec},
					&Every{Period: 30 * sec, First: uniform(r, 0, float64(30*sec))}, nil}
			},
		},
		// Centrifuge: config.go and client.go of centrifugal/centrifuge (ping
		// every 25 s, pong within 10 s, the first ping drawn from [T/2, T) to
		// spread a reconnecting crowd); centrifuge-go client.go gives up after
		// the ping interval + 10 s without a ping, and reconnect.go backs off
		// with jpillora/backoff (min 200 ms, max 20 s, factor 2, jitter: a
		// uniform draw in [min, min·2ⁿ), clamped to max). FullJitter with
		// Min draws below the cap instead of clamping to it: the same until
		// the cap is reached.
		{
			Name:   "centrifuge",
			Source: "centrifuge config.go/client.go (ping 25 s, pong timeout 10 s, first ping in [T/2, T)), centrifuge-go client.go (dead after 35 s without a ping) and reconnect.go (200 ms → 20 s, factor 2, jitter)",
			Pings:  Cadence{Server: 25 * sec},
			Client: func(r *rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 35 * sec, DeadAfter: 35 * sec}, Never{},
					&FullJitter{Base: 200 * ms, Cap: 20 * sec, Min: 200 * ms, Rand: r}}
			},
			Server: func(r *rand.Rand) Set {
				first := uniform(r, float64(25*sec)/2, float64(25*sec))
				return Set{&Fixed{SuspectAfter: 35 * sec, DeadAfter: 35 * sec}, &Every{Period: 25 * sec, First: first}, nil}
			},
		},
		// gRPC: grpc-go keepalive/keepalive.go and internal/transport/
		// defaults.go. Client keepalive is off by default; when enabled its
		// Time is clamped to at least 10 s, the value used here, with Timeout
		// 20 s: a ping after 10 s without activity, dead 20 s later. The
		// server must permit it (EnforcementPolicy.MinTime defaults to 5 min;
		// more pings get GOAWAY "too_many_pings"). Server keepalive: Time
		// 2 h, Timeout 20 s. Backoff: grpc/grpc doc/connection-backoff.md.
		{
			Name:   "grpc",
			Source: "grpc-go keepalive (off by default; client Time at its 10 s minimum, Timeout 20 s; server Time 2 h, Timeout 20 s), grpc/grpc doc/connection-backoff.md (1 s, ×1.6, ±20 %, max 120 s)",
			Pings:  Cadence{Client: 10 * sec, Server: 2 * time.Hour},
			Client: func(r *rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 30 * sec, DeadAfter: 30 * sec}, &Idle{Every: 10 * sec}, &GRPC{Rand: r}}
			},
			Server: func(*rand.Rand) Set {
				d := 2*time.Hour + 20*sec
				return Set{&Fixed{SuspectAfter: d, DeadAfter: d}, &Idle{Every: 2 * time.Hour}, nil}
			},
		},
		// Akka cluster: akka-cluster/src/main/resources/reference.conf,
		// failure-detector section: heartbeat-interval 1 s, threshold 8.0,
		// max-sample-size 1000, min-std-deviation 100 ms,
		// acceptable-heartbeat-pause 3 s; every node heartbeats the nodes it
		// monitors. A lost association is retried after
		// akka.remote.retry-gate-closed-for = 5 s (classic remoting
		// reference.conf). The 1000-sample window costs 4 KB per side.
		{
			Name:   "akka",
			Source: "akka-cluster reference.conf (phi accrual: interval 1 s, threshold 8, 1000 samples, min std 100 ms, pause 3 s), akka-remote reference.conf (retry-gate-closed-for 5 s)",
			Pings:  Cadence{Client: sec, Server: sec},
			Client: func(*rand.Rand) Set { return Set{akkaPhi(), &Every{Period: sec}, &Constant{Delay: 5 * sec}} },
			Server: func(*rand.Rand) Set { return Set{akkaPhi(), &Every{Period: sec}, nil} },
		},
		// This library's defaults (Default, DefaultServerSet): the client
		// pings after 5 s of idle line and the server listens, each with the
		// Adaptive detector; either probes a suspect peer after 1 s, then
		// at doubling gaps; the client's first redial is spread over the
		// server's advised window.
		{
			Name:   "default",
			Source: "this library: Adaptive detector, AdaptiveInterval (client, 5 s idle, probes 1 s then doubling), Listen (server, probes doubling from 1 s), Advised backoff with full jitter 1 s → 30 s",
			Pings:  Cadence{Client: DefaultAdaptiveInterval},
			Client: DefaultSet,
			Server: func(*rand.Rand) Set { return DefaultServerSet() },
		},
		// The plain form of each detector at the default's cadence, for
		// comparison: the folk rule "ping every T, dead after 2T"; Adaptive
		// with a plain idle interval; φ accrual fitted to idle pings.
		{
			Name:   "fixed",
			Source: "this library: ping after 5 s idle (probe every 1 s), suspect after 6 s and dead after 10 s of silence (2 × interval); server listens; full jitter 1 s → 30 s",
			Pings:  Cadence{Client: 5 * sec},
			Client: func(r *rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 6 * sec, DeadAfter: 10 * sec}, &Idle{Every: 5 * sec, Probe: sec}, &FullJitter{Rand: r}}
			},
			Server: func(*rand.Rand) Set {
				return Set{&Fixed{SuspectAfter: 6 * sec, DeadAfter: 10 * sec}, &Listen{}, nil}
			},
		},
		{
			Name:   "adaptive",
			Source: "this library: Adaptive detector with a plain idle interval (5 s, probe every 1 s); server listens; full jitter 1 s → 30 s",
			Pings:  Cadence{Client: 5 * sec},
			Client: func(r *rand.Rand) Set {
				return Set{&Adaptive{}, &Idle{Every: 5 * sec, Probe: sec}, &FullJitter{Rand: r}}
			},
			Server: func(*rand.Rand) Set { return Set{&Adaptive{}, &Listen{}, nil} },
		},
		{
			Name:   "phi",
			Source: "this library: phi accrual (Akka's formula; threshold 8, suspect at 1, 100 samples of gaps in [5 s, 10 s], min std 250 ms, pause 500 ms) with a 5 s idle interval (probe every 1 s); server listens; full jitter 1 s → 30 s",
			Pings:  Cadence{Client: 5 * sec},
			Client: func(r *rand.Rand) Set {
				return Set{plainPhi(), &Idle{Every: 5 * sec, Probe: sec}, &FullJitter{Rand: r}}
			},
			Server: func(*rand.Rand) Set { return Set{plainPhi(), &Listen{}, nil} },
		},
	}
}

func akkaPhi() *PhiAccrual {
	return &PhiAccrual{Threshold: 8, Window: 1000, MinStdDev: 100 * ms, AcceptablePause: 3 * sec, FirstInterval: sec}
}

func plainPhi() *PhiAccrual {
	return &PhiAccrual{Threshold: 8, SuspectThreshold: 1, Window: 100, MinStdDev: 250 * ms,
		AcceptablePause: 500 * ms, FirstInterval: 5 * sec, MinSample: 5 * sec, MaxSample: 10 * sec}
}
