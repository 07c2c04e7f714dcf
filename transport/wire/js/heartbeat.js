// heartbeat.js: the browser client of github.com/heartbeat-go/heartbeat.
//
// A dependency-free ES module. It speaks the application-level heartbeat of
// package transport/wire (JSON and binary forms, negotiated through the
// WebSocket subprotocol) and mirrors the Go fsm.Machine: the states
// connecting, alive, suspect, dead, reconnecting and closed, the Adaptive
// detector and AdaptiveInterval pinger with the Go defaults, the stall guard
// and the server-advised backoff. One client owns at most one socket at any
// moment. See docs/integrating.md ("Browsers").
//
// Built from src/constants.js, codec.js, detector.js, machine.js and
// client.js: edit those, then rebuild this file with
// go test ./transport/wire/js -run TestBundleIsCurrent -update

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
const MAX_CONN_ID = 64, MAX_REASON = 123, MAX_TARGET = 256, MAX_META = 8, MAX_META_KEY = 16, MAX_META_VALUE = 32;
const MAX_WINDOW_MS = 3600000;
const MAX_TIMEOUT_ADVICE_MS = 600000; // wire.MaxTimeoutAdvice, policy.MaxAdvice
const MIN_ADVICE_MS = 1000; // policy.MinAdvice
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TYPES = ["", "ping", "pong", "drain", "close"];

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

// ---------------------------------------------------------------- codec

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function utf8Len(s) {
  return enc.encode(s).length;
}

function malformed(detail) {
  return new HeartbeatError("EMALFORMED", "heartbeat: malformed heartbeat message: " + detail);
}

function checkStr(field, s, limit) {
  if (typeof s !== "string") throw malformed(field + " is not a string");
  if (utf8Len(s) > limit) throw malformed(field + " exceeds " + limit + " bytes");
}

function validate(m) {
  if (!TYPES.includes(m.t) || m.t === "") throw malformed("type " + String(m.t).slice(0, 16));
  for (const k of ["seq", "ts"]) {
    if (!Number.isSafeInteger(m[k])) throw malformed(k + " is not a safe integer");
  }
  if (m.seq < 0) throw malformed("seq is negative");
  if (!Number.isSafeInteger(m.rw) || m.rw < 0 || m.rw > MAX_WINDOW_MS) throw malformed("rw out of range");
  checkStr("id", m.id, MAX_CONN_ID);
  checkStr("reason", m.reason, MAX_REASON);
  checkStr("to", m.to, MAX_TARGET);
  if (typeof m.meta !== "object" || m.meta === null || Array.isArray(m.meta)) throw malformed("meta is not an object");
  const keys = Object.keys(m.meta);
  if (keys.length > MAX_META) throw malformed("too many meta entries");
  for (const k of keys) {
    if (k === "") throw malformed("empty meta key");
    checkStr("meta key", k, MAX_META_KEY);
    checkStr("meta value", m.meta[k], MAX_META_VALUE);
  }
}

// clampTA is the server's timeout advice (ms) as wire reads it: clamped to
// [0, 10 min] and truncated to centiseconds, never rejected (a bad advice
// must not cost the heartbeat it rides on); anything but a number is none.
function clampTA(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return 0;
  return Math.min(Math.max(Math.floor(x / 10) * 10, 0), MAX_TIMEOUT_ADVICE_MS);
}

function normal(m) {
  return {
    t: m.t, seq: m.seq ?? 0, ts: m.ts ?? 0, id: m.id ?? "", rw: m.rw ?? 0, ta: clampTA(m.ta),
    reason: m.reason ?? "", to: m.to ?? "", meta: m.meta ?? {},
  };
}

// isHeartbeat reports whether a message (string or Uint8Array) is a
// heartbeat rather than an application message, as wire.IsHeartbeat does.
export function isHeartbeat(data) {
  if (typeof data === "string") return data.startsWith('{"hb":');
  const b = toBytes(data);
  if (b === null) return false;
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x68) return true;
  const p = [0x7b, 0x22, 0x68, 0x62, 0x22, 0x3a];
  return b.length >= 6 && p.every((c, i) => b[i] === c);
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

// encodeJSON returns m's JSON form (a string), as wire.AppendJSON writes it.
export function encodeJSON(msg) {
  const m = normal(msg);
  validate(m);
  let s = '{"hb":1,"t":"' + m.t + '","seq":' + m.seq + ',"ts":' + m.ts;
  if (m.id) s += ',"id":' + JSON.stringify(m.id);
  if (m.rw > 0) s += ',"rw":' + m.rw;
  if (m.ta > 0) s += ',"ta":' + m.ta;
  if (m.reason) s += ',"reason":' + JSON.stringify(m.reason);
  if (m.to) s += ',"to":' + JSON.stringify(m.to);
  const keys = Object.keys(m.meta).sort();
  if (keys.length) s += ',"meta":{' + keys.map((k) => JSON.stringify(k) + ":" + JSON.stringify(m.meta[k])).join(",") + "}";
  s += "}";
  if (utf8Len(s) > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  return s;
}

// decodeJSON decodes the JSON form; it throws a HeartbeatError (EMALFORMED).
export function decodeJSON(s) {
  if (typeof s !== "string") throw malformed("not a string");
  if (s.length > MAX_MESSAGE_SIZE || utf8Len(s) > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  if (!s.startsWith('{"hb":')) throw malformed('no JSON heartbeat prefix (want {"hb":)');
  let j;
  try {
    j = JSON.parse(s);
  } catch (e) {
    throw malformed(String(e.message).slice(0, 80));
  }
  if (j.hb !== VERSION) throw malformed("version " + JSON.stringify(j.hb) + ", want 1");
  const m = normal(j);
  validate(m);
  return m;
}

function putUvarint(out, v) {
  let x = BigInt(v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function putStr(out, s) {
  const b = enc.encode(s);
  putUvarint(out, b.length);
  for (const c of b) out.push(c);
}

// encodeBinary returns m's binary form (a Uint8Array), as wire.AppendBinary
// writes it.
export function encodeBinary(msg) {
  const m = normal(msg);
  validate(m);
  const keys = Object.keys(m.meta).sort();
  let flags = 0;
  if (m.id) flags |= 1;
  if (m.rw > 0) flags |= 2;
  if (m.reason) flags |= 4;
  if (m.to) flags |= 8;
  if (keys.length) flags |= 16;
  if (m.ta >= 10) flags |= 32; // the timeout advice: version 2
  const out = [0xff, 0x68, flags & 32 ? 2 : VERSION, TYPES.indexOf(m.t), flags];
  putUvarint(out, m.seq);
  const ts = BigInt(m.ts);
  putUvarint(out, ts < 0n ? ~(ts << 1n) : ts << 1n); // zig-zag, as Go's AppendVarint
  if (flags & 1) putStr(out, m.id);
  if (flags & 2) putUvarint(out, m.rw);
  if (flags & 4) putStr(out, m.reason);
  if (flags & 8) putStr(out, m.to);
  if (flags & 16) {
    putUvarint(out, keys.length);
    for (const k of keys) {
      putStr(out, k);
      putStr(out, m.meta[k]);
    }
  }
  if (flags & 32) putUvarint(out, Math.floor(m.ta / 10));
  if (out.length > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  return new Uint8Array(out);
}

// decodeBinary decodes the binary form; it throws a HeartbeatError
// (EMALFORMED). Every length is checked against what remains before it is
// read, as wire.DecodeBinary does.
export function decodeBinary(data) {
  const b = toBytes(data);
  if (b === null) throw malformed("not bytes");
  if (b.length > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  if (b.length < 5 || b[0] !== 0xff || b[1] !== 0x68) throw malformed("no binary heartbeat header");
  if (b[2] !== VERSION && b[2] !== 2) throw malformed("version " + b[2] + ", want 1 or 2");
  const t = TYPES[b[3]];
  if (!t) throw malformed("type " + b[3]);
  const flags = b[4];
  if (flags & ~(b[2] === 2 ? 63 : 31)) throw malformed("unknown flags");
  let off = 5;
  const uvarint = (field, limit) => {
    let x = 0n, shift = 0n;
    for (let i = 0; ; i++) {
      if (off >= b.length || i >= 10) throw malformed(field + ": truncated or overlong varint");
      const c = b[off++];
      x |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) break;
      shift += 7n;
    }
    if (x > BigInt(limit)) throw malformed(field + " exceeds " + limit);
    return x;
  };
  const str = (field, limit) => {
    const n = Number(uvarint(field, limit));
    if (n > b.length - off) throw malformed(field + ": length " + n + " claimed, only " + (b.length - off) + " bytes remain");
    let s;
    try {
      s = dec.decode(b.subarray(off, off + n));
    } catch {
      throw malformed(field + " is not valid UTF-8");
    }
    off += n;
    return s;
  };
  const m = { t, seq: 0, ts: 0, id: "", rw: 0, ta: 0, reason: "", to: "", meta: {} };
  m.seq = Number(uvarint("seq", MAX_SAFE));
  const z = uvarint("ts", 2n ** 64n - 1n);
  const ts = z & 1n ? ~(z >> 1n) : z >> 1n;
  if (ts > BigInt(MAX_SAFE) || ts < -BigInt(MAX_SAFE)) throw malformed("ts out of range");
  m.ts = Number(ts);
  if (flags & 1) m.id = str("id", MAX_CONN_ID);
  if (flags & 2) m.rw = Number(uvarint("rw", MAX_WINDOW_MS));
  if (flags & 4) m.reason = str("reason", MAX_REASON);
  if (flags & 8) m.to = str("to", MAX_TARGET);
  if (flags & 16) {
    const n = Number(uvarint("meta", MAX_META));
    if (n * 2 > b.length - off) throw malformed("meta: " + n + " entries claimed");
    for (let i = 0; i < n; i++) {
      const k = str("meta key", MAX_META_KEY);
      const v = str("meta value", MAX_META_VALUE);
      if (k === "" || Object.hasOwn(m.meta, k)) throw malformed("empty or duplicate meta key");
      m.meta[k] = v;
    }
  }
  if (flags & 32) {
    const cs = uvarint("ta", 2n ** 64n - 1n);
    m.ta = Number(cs > BigInt(MAX_TIMEOUT_ADVICE_MS / 10) ? BigInt(MAX_TIMEOUT_ADVICE_MS / 10) : cs) * 10;
  }
  if (off !== b.length) throw malformed(b.length - off + " bytes after the last field");
  return m;
}

// ---------------------------------------------------------------- policies

// Adaptive is policy.Adaptive: a Jacobson/Karels estimate of the lateness
// of evidence and of round trips, and a decaying worst lateness. Times in
// milliseconds. suspect = interval + α; dead = interval + max(α + (probes−1)·
// probe + rto, tol).
export class Adaptive {
  constructor(o) {
    this.o = o;
    this.last = null;
    this.late = { mean: 0, dev: 0, n: 0 };
    this.rtt = { mean: 0, dev: 0, n: 0 };
    this.worst = 0;
    this.prior = 0;
    this.advice = 0; // the server's fleet advice, ms; 0 for none
  }
  // advise is policy.Adaptive.Advise: a dead-timeout advice under 1 s is
  // none, over 10 min is clamped; it only raises the tolerance, never past
  // maxToleranceFactor·interval.
  advise(ms) {
    this.advice = !(ms >= MIN_ADVICE_MS) ? 0 : Math.min(ms, MAX_TIMEOUT_ADVICE_MS);
  }
  start(now) {
    this.last = now;
  }
  static add(e, x, gain) {
    if (e.n === 0) {
      e.mean = x;
      e.dev = x / 2;
    } else {
      const err = x - e.mean;
      e.mean += gain * err;
      e.dev += gain * (Math.abs(err) - e.dev);
    }
    e.n++;
  }
  observe(now, rtt) {
    const o = this.o, maxM = o.interval, maxTol = o.maxToleranceFactor * o.interval;
    if (this.last !== null) {
      const gap = now - this.last;
      if (gap >= o.interval / 2) {
        const l = Math.max(gap - o.interval, 0);
        if (this.late.n === 0) this.prior = this.initial();
        Adaptive.add(this.late, Math.min(l, maxM), o.gain);
        this.worst = Math.max(Math.min(l, maxTol), this.worst * (1 - 1 / o.memory));
        this.prior *= 1 - 1 / o.warmup;
      }
    }
    this.last = now;
    if (rtt > 0) Adaptive.add(this.rtt, Math.min(rtt, maxM), o.gain);
  }
  initial() {
    const o = this.o;
    return Math.min(Math.max(o.initialMargin, o.minMargin), o.interval);
  }
  margins() {
    const o = this.o, minM = o.minMargin, maxM = o.interval, maxTol = o.maxToleranceFactor * o.interval;
    const w = Math.max(this.worst, this.prior);
    let tol = Math.min(o.headroom * w, w + o.slack, maxTol);
    if (this.advice > 0) tol = Math.min(Math.max(tol, this.advice - o.interval), maxTol);
    let r;
    if (this.rtt.n > 0) r = o.beta * this.rtt.mean + o.phi * this.rtt.dev;
    else if (this.late.n > 0) r = o.beta * this.late.mean + o.phi * this.late.dev;
    else return { alpha: this.initial(), rto: this.initial(), tol };
    const rto = Math.min(Math.max(r + o.retransmit, minM), maxM);
    let alpha = rto;
    if (this.late.n > 0) alpha = Math.min(Math.max(o.beta * this.late.mean + o.phi * this.late.dev, rto), maxM);
    return { alpha, rto, tol };
  }
  timeouts() {
    const o = this.o;
    const { alpha, rto, tol } = this.margins();
    return { suspect: o.interval + alpha, dead: o.interval + Math.max(alpha + (o.probes - 1) * o.probe + rto, tol) };
  }
  // bound is DetectionBound without the network's round trip: no learned
  // state can make the dead timeout longer.
  bound() {
    const o = this.o;
    return o.interval + Math.max(2 * o.interval + (o.probes - 1) * o.probe, o.maxToleranceFactor * o.interval);
  }
}

// nextPing is policy.AdaptiveInterval.NextPing with ProbeGrowth: probes
// while suspect every probe·growth^(k−1) (at most 4 growths), otherwise an
// idle gap that grows from probe back to interval after a suspicion.
function probeGap(lo, growth, unanswered) {
  if (!(growth > 1) || unanswered <= 1) return lo;
  return lo * Math.pow(Math.min(growth, 4), Math.min(unanswered - 1, 4));
}

// ---------------------------------------------------------------- machine

// Machine decides, as fsm.Machine does, and does nothing else: each input
// method takes the page's monotonic time (ms) and returns the actions the
// client must carry out, in order; deadline is when it must be woken next
// (wake), and rearm says the wake-up moved. It touches no socket, timer,
// page or storage; its only randomness is the backoff's draw. Actions:
//
//	{do: "dial", url}          open a socket (url: a drain target, or null)
//	{do: "drop", code, reason} close the current socket, if any, and forget it
//	{do: "send", msg}          send a heartbeat message if the socket is open
//	                           (one that throws is sendFailed)
//	{do: "emit", type, ev}     an event: "change", "open", "message", "error"
//	{do: "end"}                the client closed: stop listening to the page
class Machine {
  constructor(o, random) {
    this.o = o;
    this.random = random;
    this.state = CONNECTING;
    this.protocol = "";
    this.connId = "";
    this.advice = 0; // the server's latest reconnect window, ms
    this.detector = new Adaptive(o);
    this.deadline = null;
    this.rearm = false;
    this.seq = 0;
    this.attempt = 0;
    this.started = false;
    this.offline = false;
    this.nextURL = null;
    this.closeAdvice = false;
    this.hiddenInCache = false;
    this.stats = { dials: 0, opens: 0 };
    this.t = 0;
    this.out = null;
  }

  // step runs one input at now and returns its actions.
  step(now, f) {
    this.t = now;
    this.out = [];
    f();
    const out = this.out;
    this.out = null;
    return out;
  }

  // ---- inputs

  start(now) {
    return this.step(now, () => {
      if (this.started) return;
      this.started = true;
      this.streakStart = now;
      this.dial();
    });
  }

  // close ends the client (closed) with close code 1000.
  close(now, reason) {
    return this.step(now, () => {
      if (this.state === CLOSED) return;
      this.drop(1000, reason);
      this.transition(CLOSED, "user close");
      this.end();
    });
  }

  // dialThrew: the WebSocket constructor refused the dial (a bad URL).
  dialThrew(now, err) {
    return this.step(now, () => {
      if (this.state === CLOSED) return;
      this.emit("error", new HeartbeatError("EDIAL", "heartbeat: " + (err && err.message)));
      this.transition(CLOSED, "gave up");
      this.end();
    });
  }

  // opened: the socket opened with the subprotocol p; ok says it is one
  // the client offered.
  opened(now, p, ok) {
    return this.step(now, () => {
      if (!ok) {
        this.drop(CLOSE_PAGE_AWAY, "no heartbeat subprotocol");
        this.emit("error", new HeartbeatError("EPROTOCOL", "heartbeat: the server accepted no offered subprotocol (got " + JSON.stringify(p) + ")"));
        this.transition(CLOSED, "gave up");
        this.end();
        return;
      }
      this.protocol = p;
      this.stats.opens++;
      this.aliveSince = now;
      this.lastEvidence = now;
      this.lastPing = null;
      this.unanswered = 0;
      this.probeBy = null;
      this.gap = this.o.interval;
      this.gapSeen = null;
      this.closeAdvice = false;
      this.detector.start(now);
      this.transition(ALIVE, "connected");
      this.emit("open", { protocol: p, connId: this.connId });
      this.schedule();
    });
  }

  // appMessage: an application message of size bytes (or characters).
  appMessage(now, data, size) {
    return this.step(now, () => {
      if (this.state !== ALIVE && this.state !== SUSPECT) return;
      this.evidence(0);
      if (size > this.o.maxMessageSize) {
        this.emit("error", new HeartbeatError("ETOOBIG", "heartbeat: message of " + size + " bytes exceeds maxMessageSize " + this.o.maxMessageSize + "; dropped"));
      } else {
        this.emit("message", { data });
      }
      this.schedule();
    });
  }

  // malformed: a heartbeat message that did not decode; still evidence
  // of life, as in Go.
  malformed(now, err) {
    return this.step(now, () => {
      if (this.state !== ALIVE && this.state !== SUSPECT) return;
      this.evidence(0);
      this.emit("error", err);
      this.schedule();
    });
  }

  // heartbeat: a decoded heartbeat message m from the server.
  heartbeat(now, m) {
    return this.step(now, () => {
      if (this.state !== ALIVE && this.state !== SUSPECT) return;
      if (m.id) this.connId = m.id;
      if (m.t !== "pong" && m.rw > 0) this.advice = Math.min(m.rw, this.o.maxWindow);
      if (m.t === "ping" && m.ta > 0) this.detector.advise(m.ta);
      // A round trip is measured, as in Go, only by the pong of the latest
      // ping, on this page's own clock: an older ping's pong says nothing
      // of the link now, and the wall clock can step.
      let rtt = 0;
      if (m.t === "pong" && m.seq > 0 && m.seq === this.seq && this.lastPing !== null) rtt = now - this.lastPing;
      this.evidence(rtt);
      switch (m.t) {
        case "ping":
          this.act({ do: "send", msg: { t: "pong", seq: m.seq, ts: m.ts } });
          break;
        case "drain":
          if (m.to) this.nextURL = m.to;
          this.lose("drain", {}, "advised");
          return;
        case "close":
          this.closeAdvice = true; // the socket close that follows is not terminal
          break;
      }
      this.schedule();
    });
  }

  // sendFailed: sending a heartbeat threw; the connection is lost, as a
  // failed send is in Go.
  sendFailed(now, err) {
    return this.step(now, () => {
      this.emit("error", new HeartbeatError("ESEND", "heartbeat: " + (err && err.message)));
      if (this.state === ALIVE || this.state === SUSPECT) this.lose("send failed", {}, "normal");
    });
  }

  // socketClosed: the socket closed with code and reason.
  socketClosed(now, code, reason) {
    return this.step(now, () => {
      const extra = { code, closeReason: reason };
      if (this.state === CONNECTING) {
        if (code >= 4000 && code <= 4999) {
          this.transition(CLOSED, "gave up", extra);
          this.end();
          return;
        }
        this.dialFailed("dial failed", extra);
        return;
      }
      if (this.state !== ALIVE && this.state !== SUSPECT) return;
      let mode = "normal";
      if (code === 1000) mode = this.closeAdvice ? "advised" : "terminal";
      else if (code === 1008) {
        mode = "policy";
        this.emit("error", new HeartbeatError("EPOLICY", "heartbeat: the server closed for a policy violation: " + reason));
      } else if (code === 1009) {
        this.emit("error", new HeartbeatError("ETOOBIG", "heartbeat: the server closed: message too big: " + reason));
      } else if (code === 1011) {
        this.emit("error", new HeartbeatError("ESERVER", "heartbeat: the server closed on an internal error: " + reason));
      } else if (code >= 4000 && code <= 4999) mode = "terminal";
      this.lose("peer closed", extra, mode);
    });
  }

  // wake runs at the deadline, or late: a wake-up more than stallThreshold
  // past it means this page stood still (a frozen or throttled tab), so the
  // silence it now sees was not measured; it probes and gives the probe
  // max(dead − suspect, stallGrace) before it convicts, as fsm does.
  wake(now) {
    return this.step(now, () => {
      const stalled = this.deadline !== null && now > this.deadline + this.o.stallThreshold;
      this.deadline = null;
      if (stalled) this.stall();
      this.advance(stalled);
      if (this.state !== CLOSED) this.schedule();
    });
  }

  offlineEvent() {
    this.offline = true;
  }

  // online: the network is back after an outage: a client waiting to
  // redial dials now; a connected one probes, since its socket may not
  // have survived the change.
  online(now) {
    return this.step(now, () => {
      const was = this.offline;
      this.offline = false;
      if (!was) return;
      if (this.state === RECONNECTING) {
        this.clearTimer();
        this.attempt = 0;
        this.streakStart = now;
        this.redial("network online");
      } else if (this.state === ALIVE || this.state === SUSPECT) {
        this.probeNow();
      }
    });
  }

  // visible: the page became visible.
  visible(now) {
    return this.step(now, () => {
      if (this.hiddenInCache) return;
      if (this.state === RECONNECTING) {
        this.clearTimer();
        this.redial("page visible");
      } else {
        this.resumedNow(true);
      }
    });
  }

  // resumed: the page ran again after being frozen; visible says whether
  // it is visible.
  resumed(now, visible) {
    return this.step(now, () => this.resumedNow(visible));
  }

  // The back/forward cache: a page entering it closes its socket (an open
  // socket keeps a page out of the cache, and the server would otherwise
  // hold it); a page restored from it dials at once.
  pageHidden(now, persisted) {
    return this.step(now, () => {
      if (!persisted || this.state === CLOSED) return;
      this.hiddenInCache = true;
      this.drop(CLOSE_PAGE_AWAY, "page hidden"); // a page may send only 1000 or 3000-4999
      this.clearTimer();
      this.redialAt = null; // no redial from the cache: pageshow dials
      if (this.state !== RECONNECTING) {
        this.transition(DEAD, "page hidden");
        this.transition(RECONNECTING, "retry");
      }
    });
  }

  pageShown(now, persisted) {
    return this.step(now, () => {
      if (!persisted || !this.hiddenInCache || this.state === CLOSED) return;
      this.hiddenInCache = false;
      this.attempt = 0;
      this.streakStart = now;
      this.redial("page shown");
    });
  }

  // ---- actions

  act(a) {
    this.out.push(a);
  }

  emit(type, ev) {
    this.act({ do: "emit", type, ev });
  }

  drop(code, reason) {
    this.act({ do: "drop", code, reason });
  }

  end() {
    this.clearTimer();
    this.act({ do: "end" });
  }

  transition(to, reason, extra = {}) {
    const from = this.state;
    this.state = to;
    this.emit("change", { from, to, reason, at: this.t, ...extra });
  }

  dial() {
    this.drop(CLOSE_PAGE_AWAY, "redial");
    this.attempt++;
    this.stats.dials++;
    this.dialStart = this.t;
    this.act({ do: "dial", url: this.nextURL });
    this.nextURL = null;
    this.schedule();
  }

  // ---- rules

  resumedNow(visible) {
    // The page ran again after being frozen or hidden; the timers may be
    // late. Probe before convicting.
    if (this.state === ALIVE || this.state === SUSPECT) {
      if (this.t - this.lastEvidence > this.o.interval) this.probeNow();
      else this.schedule();
    } else if (this.state === RECONNECTING && visible) {
      this.clearTimer();
      this.redial("page visible");
    }
  }

  evidence(rtt) {
    // The first evidence after this page stood still spans the pause (and
    // a pong's round trip too): not the peer's lateness. As in Go, the
    // detector restarts its measurement rather than learn it.
    const t = this.t;
    if (this.probeBy !== null) this.detector.start(t);
    else this.detector.observe(t, rtt);
    this.lastEvidence = t;
    this.unanswered = 0;
    this.probeBy = null;
    if (this.state === SUSPECT) {
      this.transition(ALIVE, "evidence");
      this.gap = this.o.probe; // relax back from probe to interval
      this.gapSeen = this.lastPing;
    }
  }

  ping() {
    const t = this.t;
    if (this.lastPing !== null && t - this.lastPing < this.o.minPingInterval) return;
    this.seq++;
    // The client sends it if the socket is open; a ping to a closing
    // socket counts as sent and lost: until its close event comes, the
    // detector's clock runs as for any unanswered ping (and the next ping
    // waits its turn instead of being retried at once).
    this.act({ do: "send", msg: { t: "ping", seq: this.seq } });
    this.lastPing = t;
    this.unanswered++;
  }

  nextPing() {
    const o = this.o;
    const base = Math.max(this.lastEvidence, this.lastPing ?? -Infinity);
    if (this.state === SUSPECT) {
      this.gapSeen = this.lastPing;
      this.gap = o.probe;
      return base + Math.min(probeGap(o.probe, o.probeGrowth, this.unanswered), o.interval);
    }
    if (this.lastPing !== this.gapSeen) {
      this.gapSeen = this.lastPing;
      this.gap = Math.min(this.gap * o.intervalGrowth, o.interval);
    }
    this.gap = Math.min(Math.max(this.gap, o.probe), o.interval);
    return Math.max(base + this.gap, (this.lastPing ?? -Infinity) + o.minPingInterval);
  }

  clearTimer() {
    this.deadline = null;
    this.rearm = true;
  }

  // schedule sets the one deadline: the connect timeout, the redial, or
  // the next ping or verdict.
  schedule() {
    let d = null;
    switch (this.state) {
      case CONNECTING:
        d = this.dialStart + this.o.connectTimeout;
        break;
      case RECONNECTING:
        d = this.redialAt;
        break;
      case ALIVE:
      case SUSPECT: {
        const { suspect, dead } = this.detector.timeouts();
        d = this.nextPing();
        if (this.state === ALIVE) d = Math.min(d, this.lastEvidence + suspect);
        else d = Math.min(d, Math.max(this.lastEvidence + dead, this.probeBy ?? -Infinity));
        break;
      }
    }
    this.deadline = d ?? null;
    this.rearm = true;
  }

  stall() {
    if ((this.state === ALIVE || this.state === SUSPECT) && this.probeBy === null) {
      const { suspect, dead } = this.detector.timeouts();
      this.probeBy = this.t + Math.max(dead - suspect, this.o.stallGrace);
      this.ping();
    }
  }

  advance(stalled) {
    const t = this.t;
    switch (this.state) {
      case CONNECTING:
        if (t >= this.dialStart + this.o.connectTimeout) this.dialFailed("connect timeout");
        return;
      case RECONNECTING:
        if (t >= this.redialAt) this.redial("backoff elapsed");
        return;
    }
    if (this.state !== ALIVE && this.state !== SUSPECT) return;
    const { suspect, dead } = this.detector.timeouts();
    if (this.state === ALIVE && t >= this.lastEvidence + suspect) {
      this.transition(SUSPECT, stalled ? "local stall" : "silence");
    }
    if (this.state === SUSPECT && t >= this.lastEvidence + dead && (this.probeBy === null || t >= this.probeBy)) {
      this.lose("unanswered", {}, "normal");
      return;
    }
    if (t >= this.nextPing()) this.ping();
  }

  probeNow() {
    if (this.probeBy === null) {
      const { suspect, dead } = this.detector.timeouts();
      this.probeBy = this.t + Math.max(dead - suspect, this.o.stallGrace);
    }
    this.ping();
    this.schedule();
  }

  // ---- losses and redials

  dialFailed(reason, extra = {}) {
    this.drop(CLOSE_PAGE_AWAY, reason);
    this.transition(RECONNECTING, reason === "connect timeout" ? "connect timeout" : "dial failed", extra);
    this.planRedial("normal");
  }

  // lose: alive or suspect → dead, then → reconnecting (or closed).
  lose(reason, extra, mode) {
    const t = this.t;
    const stable = this.aliveSince !== undefined && t - this.aliveSince >= this.o.stableAfter;
    if (stable) {
      this.attempt = 0;
      this.streakStart = t;
    }
    this.drop(CLOSE_PAGE_AWAY, reason);
    this.transition(DEAD, reason, extra);
    if (mode === "terminal") {
      this.transition(CLOSED, "gave up", extra);
      this.end();
      return;
    }
    this.transition(RECONNECTING, "retry", extra);
    this.planRedial(mode);
  }

  // planRedial draws the delay before the next dial: policy.Advised (the
  // first dial of a streak uniform over the advised window, later ones
  // full jitter renumbered), or long for a policy violation (1008).
  planRedial(mode) {
    const o = this.o, t = this.t;
    const next = this.attempt + 1;
    let delay;
    const w = Math.min(this.advice, o.maxWindow);
    if (mode === "policy") {
      delay = o.backoffCap / 2 + this.random() * (o.backoffCap / 2);
    } else if (w > 0 && next <= 1) {
      delay = Math.max(this.random() * w - (t - this.streakStart), 0);
    } else {
      const n = w > 0 ? next - 1 : next;
      const env = Math.min(o.backoffBase * Math.pow(2, Math.max(n, 1) - 1), o.backoffCap);
      delay = this.random() * env;
    }
    this.redialAt = t + delay;
    this.lastDelay = delay;
    this.schedule();
  }

  redial(reason) {
    this.transition(CONNECTING, reason);
    this.dial();
  }
}

// ---------------------------------------------------------------- client

const REASONS = new Set([
  "connected", "dial failed", "connect timeout", "silence", "local stall", "evidence", "unanswered",
  "peer closed", "send failed", "retry", "backoff elapsed", "gave up", "user close",
  "network online", "page visible", "page shown", "page hidden", "drain",
]);
export { REASONS };

function randomToken(rand) {
  const b = new Uint8Array(16);
  if (globalThis.crypto && globalThis.crypto.getRandomValues) globalThis.crypto.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(rand() * 256);
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// HeartbeatClient keeps one WebSocket to url alive. Events (subscribe with
// on, which returns an unsubscribe function):
//   change  {from, to, reason, at, code?, closeReason?}  every transition
//   open    {protocol, connId}                            a socket opened
//   message {data}                                        an application message
//   close   {code, reason, wasClean}                      a socket closed
//   error   HeartbeatError                                something went wrong
export class HeartbeatClient {
  constructor(url, options = {}) {
    const g = globalThis;
    this.url = url;
    this.o = { ...DEFAULTS, ...options };
    const o = this.o;
    this.protocols = o.protocols ?? [SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON];
    this.WS = o.WebSocket ?? g.WebSocket;
    this.now = o.now ?? (() => g.performance.now());
    this.wallNow = o.wallNow ?? (() => Date.now());
    this.setTimeout = o.setTimeout ?? ((f, ms) => g.setTimeout(f, ms));
    this.clearTimeout = o.clearTimeout ?? ((h) => g.clearTimeout(h));
    this.random = o.random ?? Math.random;
    this.window = o.window === undefined ? (typeof g.addEventListener === "function" ? g : null) : o.window;
    this.document = o.document === undefined ? (g.document ?? null) : o.document;
    this.storage = o.storage === undefined ? safeSession(g) : o.storage;
    if (o.probe >= o.interval) this.o.probe = Math.max(o.interval / 2, 100);

    this.m = new Machine(this.o, this.random);
    // shown is the state of the last change delivered: a listener reads
    // the state its event speaks of, not the machine's, which may have
    // moved on within the same step (dead, then reconnecting).
    this.shown = CONNECTING;
    this.ws = null;
    this.listeners = new Map();
    this.timer = null;
    this.queue = [];
    this.running = false;
    this.resumeToken = null;
    if (o.resume !== false) this.resumeToken = this.loadToken();
    const visible = () => !!this.document && this.document.visibilityState === "visible";
    this.bound = {
      online: () => this.run(this.m.online(this.now())),
      offline: () => this.m.offlineEvent(),
      visibility: () => visible() && this.run(this.m.visible(this.now())),
      pagehide: (e) => this.run(this.m.pageHidden(this.now(), !!(e && e.persisted))),
      pageshow: (e) => this.run(this.m.pageShown(this.now(), !!(e && e.persisted))),
      resume: () => this.run(this.m.resumed(this.now(), visible())),
    };
  }

  // What the machine knows, as the client's own.
  get state() {
    return this.shown;
  }
  get protocol() {
    return this.m.protocol;
  }
  get connId() {
    return this.m.connId;
  }
  get advice() {
    return this.m.advice;
  }
  get detector() {
    return this.m.detector;
  }
  get stats() {
    return this.m.stats;
  }
  get unanswered() {
    return this.m.unanswered;
  }

  loadToken() {
    const key = this.o.resumeKey ?? RESUME_KEY;
    let t = null;
    try {
      t = this.storage ? this.storage.getItem(key) : null;
    } catch {
      t = null;
    }
    if (!t || !/^[A-Za-z0-9_-]{22}$/.test(t)) {
      t = randomToken(this.random);
      try {
        if (this.storage) this.storage.setItem(key, t);
      } catch {
        // storage full or denied: the token lives as long as the page
      }
    }
    return t;
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, ev) {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(ev);
      } catch (e) {
        // a listener's exception must not break the client
        this.setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }

  // start dials. It is called once; a closed client is not restarted.
  start() {
    if (this.m.started) return this;
    const w = this.window;
    if (w) {
      w.addEventListener("online", this.bound.online);
      w.addEventListener("offline", this.bound.offline);
      w.addEventListener("pagehide", this.bound.pagehide);
      w.addEventListener("pageshow", this.bound.pageshow);
    }
    if (this.document) {
      this.document.addEventListener("visibilitychange", this.bound.visibility);
      this.document.addEventListener("resume", this.bound.resume);
    }
    this.run(this.m.start(this.now()));
    return this;
  }

  // close closes the socket with code 1000 and ends the client (closed).
  close(reason = "client closed") {
    this.run(this.m.close(this.now(), reason));
  }

  // send sends an application message. Messages are not queued: while no
  // socket is open it throws HeartbeatError ENOTCONNECTED, and a message
  // that begins like a heartbeat ({"hb": or 0xFF 'h') throws ERESERVED.
  send(data) {
    const state = this.m.state;
    if (!this.ws || this.ws.readyState !== 1 || !(state === ALIVE || state === SUSPECT)) {
      throw new HeartbeatError("ENOTCONNECTED", "heartbeat: not connected (state " + this.state + ")");
    }
    if (isHeartbeat(data)) throw new HeartbeatError("ERESERVED", "heartbeat: application message begins like a heartbeat message");
    this.ws.send(data);
  }

  // timeouts returns the detector's current suspect and dead timeouts, ms
  // after the last evidence.
  timeouts() {
    return this.m.detector.timeouts();
  }

  // ---- carrying out the machine's actions

  // run carries out actions in order, and those of the inputs they cause
  // (a send that throws, a dial the browser refuses) after them; an input
  // that arrives meanwhile (a listener that calls close) waits its turn.
  // Then it sets the one timer to the machine's deadline.
  run(actions) {
    this.queue.push(...actions);
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) this.carry(this.queue.shift());
    } finally {
      this.running = false;
    }
    if (this.m.rearm) {
      this.m.rearm = false;
      if (this.timer !== null) this.clearTimeout(this.timer);
      this.timer = null;
      const d = this.m.deadline;
      if (d !== null) {
        this.timer = this.setTimeout(() => {
          this.timer = null;
          this.run(this.m.wake(this.now()));
        }, Math.max(0, d - this.now()));
      }
    }
  }

  carry(a) {
    switch (a.do) {
      case "emit":
        if (a.type === "change") this.shown = a.ev.to;
        this.emit(a.type, a.ev);
        break;
      case "send": {
        const ws = this.ws;
        if (!ws || ws.readyState !== 1) break; // closing: its close event follows
        const msg = a.msg.t === "ping" ? { ...a.msg, ts: Math.floor(this.wallNow()) } : a.msg;
        try {
          ws.send(this.m.protocol === SUBPROTOCOL_JSON ? encodeJSON(msg) : encodeBinary(msg));
        } catch (e) {
          this.queue.push(...this.m.sendFailed(this.now(), e));
        }
        break;
      }
      case "drop":
        this.dropSocket(a.code, a.reason);
        break;
      case "dial":
        if (this.m.state !== CLOSED) this.dial(a.url); // a listener may have closed the client meanwhile
        break;
      case "end":
        this.teardown();
        break;
    }
  }

  dial(target) {
    let u = target ?? this.url;
    if (this.resumeToken) {
      u += (u.includes("?") ? "&" : "?") + (this.o.resumeParam ?? RESUME_PARAM) + "=" + encodeURIComponent(this.resumeToken);
    }
    let ws;
    try {
      ws = new this.WS(u, this.protocols);
    } catch (e) {
      this.queue.push(...this.m.dialThrew(this.now(), e));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => this.ws === ws && this.run(this.m.opened(this.now(), ws.protocol, this.protocols.includes(ws.protocol)));
    ws.onmessage = (e) => this.ws === ws && this.onMessage(e.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.emit("close", { code: e.code, reason: e.reason, wasClean: e.wasClean });
      this.run(this.m.socketClosed(this.now(), e.code, e.reason));
    };
    ws.onerror = () => {}; // a close follows every error
  }

  // onMessage sorts an inbound message for the machine: an application
  // message, a heartbeat, or a heartbeat that does not decode.
  onMessage(data) {
    const t = this.now();
    if (!isHeartbeat(data)) {
      const size = typeof data === "string" ? data.length : data.byteLength ?? 0;
      this.run(this.m.appMessage(t, data, size));
      return;
    }
    let m;
    try {
      m = typeof data === "string" ? decodeJSON(data) : decodeBinary(data);
    } catch (e) {
      this.run(this.m.malformed(t, e));
      return;
    }
    this.run(this.m.heartbeat(t, m));
  }

  // dropSocket detaches and closes the current socket: the client never
  // holds two.
  dropSocket(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    // A close reason over 123 bytes makes close() throw and leaves the
    // socket open: cut it at a character boundary.
    while (utf8Len(reason) > MAX_REASON) reason = reason.slice(0, -1);
    this.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  teardown() {
    if (this.timer !== null) this.clearTimeout(this.timer);
    this.timer = null;
    const w = this.window;
    if (w) {
      w.removeEventListener("online", this.bound.online);
      w.removeEventListener("offline", this.bound.offline);
      w.removeEventListener("pagehide", this.bound.pagehide);
      w.removeEventListener("pageshow", this.bound.pageshow);
    }
    if (this.document) {
      this.document.removeEventListener("visibilitychange", this.bound.visibility);
      this.document.removeEventListener("resume", this.bound.resume);
    }
  }
}

function safeSession(g) {
  try {
    return g.sessionStorage ?? null;
  } catch {
    return null; // sandboxed frames throw on access
  }
}

// connect creates a client and starts it.
export function connect(url, options) {
  return new HeartbeatClient(url, options).start();
}
