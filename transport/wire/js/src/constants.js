// src/constants.js: the protocol constants, the defaults and HeartbeatError.
// heartbeat.js is src/*.js in one file (see TestBundleIsCurrent in
// transport/wire/js/bundle_test.go); "export /* internal */" marks what the
// other parts import and the bundle does not export.

export const VERSION = 1;
export const SUBPROTOCOL_JSON = "heartbeat.v1.json";
export const SUBPROTOCOL_BINARY = "heartbeat.v1.bin";

// The states, as fsm.State prints them.
export const CONNECTING = "connecting";
export const ALIVE = "alive";
export const SUSPECT = "suspect";
export const DEAD = "dead";
export const RECONNECTING = "reconnecting";
export const CLOSED = "closed";

// Limits of package wire.
export const MAX_MESSAGE_SIZE = 1024;
export /* internal */ const MAX_CONN_ID = 64, MAX_REASON = 123, MAX_TARGET = 256, MAX_META = 8, MAX_META_KEY = 16, MAX_META_VALUE = 32;
export /* internal */ const MAX_WINDOW_MS = 3600000;
export /* internal */ const MAX_TIMEOUT_ADVICE_MS = 600000; // wire.MaxTimeoutAdvice, policy.MaxAdvice
export /* internal */ const MIN_ADVICE_MS = 1000; // policy.MinAdvice
export /* internal */ const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export /* internal */ const TYPES = ["", "ping", "pong", "drain", "close"];

// The resume token travels as this query parameter on every dial.
export const RESUME_PARAM = "hb_resume";
// CLOSE_PAGE_AWAY (wire.ClosePageAway) closes a socket the client leaves
// but not its session — to redial, or into the back/forward cache — where
// a Go client sends 1001, which a page may not: the server keeps the
// session for its resume window. 1000 is sent only by close(): done.
export const CLOSE_PAGE_AWAY = 4001;
// The sessionStorage key the token is kept under.
export const RESUME_KEY = "heartbeat.resume";

// Defaults, in milliseconds; each names the Go constant it copies.
export const DEFAULTS = Object.freeze({
  interval: 5000, // policy.DefaultAdaptiveInterval = DefaultIntervalMax
  probe: 1000, // policy.DefaultProbe = DefaultIntervalMin
  probeGrowth: 2, // policy.DefaultProbeGrowth
  intervalGrowth: 2, // policy.DefaultIntervalGrowth
  probes: 1, // policy.DefaultProbes
  gain: 0.1, // policy.DefaultGain
  beta: 1, // policy.DefaultBeta
  phi: 4, // policy.DefaultPhi
  minMargin: 250, // policy.DefaultMinMargin
  initialMargin: 1000, // policy.DefaultInitialMargin
  retransmit: 200, // policy.DefaultRetransmit
  headroom: 14, // policy.DefaultHeadroom
  memory: 720, // policy.DefaultMemory
  slack: 5000, // policy.DefaultSlack
  warmup: 20, // policy.DefaultWarmup
  maxToleranceFactor: 6, // policy.DefaultMaxToleranceFactor
  minPingInterval: 100, // fsm.DefaultMinPingInterval
  connectTimeout: 20000, // fsm.DefaultConnectTimeout
  stableAfter: 5000, // fsm.DefaultStableAfter
  stallThreshold: 1000, // fsm.DefaultStallThreshold
  stallGrace: 3000, // fsm.DefaultStallGrace
  backoffBase: 1000, // policy.DefaultBackoffBase
  backoffCap: 30000, // policy.DefaultBackoffCap
  maxWindow: 600000, // policy.DefaultMaxWindow
  maxMessageSize: 1 << 20, // gorillaws.DefaultReadLimit
});

// HeartbeatError is what the "error" event carries and what send throws.
// code is one of: "ENOTCONNECTED" (send while not connected), "ERESERVED"
// (an application message that begins like a heartbeat), "EMALFORMED" (a
// heartbeat the server sent could not be decoded: dropped, the connection
// stays), "ETOOBIG" (an inbound message over maxMessageSize: dropped, or
// the server closed with 1009), "EPROTOCOL" (the server accepted no
// heartbeat subprotocol: terminal), "EPOLICY" (close 1008), "ESERVER"
// (close 1011).
export class HeartbeatError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "HeartbeatError";
    this.code = code;
  }
}
