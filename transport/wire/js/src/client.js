// src/client.js: HeartbeatClient, the state machine and its socket.
import { ALIVE, CLOSED, CLOSE_PAGE_AWAY, CONNECTING, DEAD, DEFAULTS, HeartbeatError, MAX_REASON, RECONNECTING, RESUME_KEY, RESUME_PARAM, SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, SUSPECT } from "./constants.js";
import { decodeBinary, decodeJSON, encodeBinary, encodeJSON, isHeartbeat, utf8Len } from "./codec.js";
import { Adaptive, probeGap } from "./detector.js";

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

    this.state = CONNECTING;
    this.ws = null;
    this.protocol = "";
    this.connId = "";
    this.advice = 0; // the server's latest reconnect window, ms
    this.detector = new Adaptive(this.o);
    this.listeners = new Map();
    this.timer = null;
    this.deadline = null;
    this.seq = 0;
    this.attempt = 0;
    this.started = false;
    this.offline = false;
    this.nextURL = null;
    this.closeAdvice = false;
    this.stats = { dials: 0, opens: 0 };
    this.resumeToken = null;
    if (o.resume !== false) this.resumeToken = this.loadToken();
    this.bound = {
      online: () => this.onOnline(),
      offline: () => {
        this.offline = true;
      },
      visibility: () => this.onVisibility(),
      pagehide: (e) => this.onPageHide(e),
      pageshow: (e) => this.onPageShow(e),
      resume: () => this.onWake(),
    };
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
    if (this.started) return this;
    this.started = true;
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
    this.streakStart = this.now();
    this.dial();
    return this;
  }

  // close closes the socket with code 1000 and ends the client (closed).
  close(reason = "client closed") {
    if (this.state === CLOSED) return;
    this.dropSocket(1000, reason);
    this.transition(CLOSED, "user close");
    this.teardown();
  }

  teardown() {
    this.clearTimer();
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

  // send sends an application message. Messages are not queued: while no
  // socket is open it throws HeartbeatError ENOTCONNECTED, and a message
  // that begins like a heartbeat ({"hb": or 0xFF 'h') throws ERESERVED.
  send(data) {
    if (!this.ws || this.ws.readyState !== 1 || !(this.state === ALIVE || this.state === SUSPECT)) {
      throw new HeartbeatError("ENOTCONNECTED", "heartbeat: not connected (state " + this.state + ")");
    }
    if (isHeartbeat(data)) throw new HeartbeatError("ERESERVED", "heartbeat: application message begins like a heartbeat message");
    this.ws.send(data);
  }

  // timeouts returns the detector's current suspect and dead timeouts, ms
  // after the last evidence.
  timeouts() {
    return this.detector.timeouts();
  }

  // ---- transitions

  transition(to, reason, extra = {}) {
    const from = this.state;
    this.state = to;
    this.emit("change", { from, to, reason, at: this.now(), ...extra });
  }

  dialURL() {
    let u = this.nextURL ?? this.url;
    this.nextURL = null;
    if (this.resumeToken) {
      u += (u.includes("?") ? "&" : "?") + (this.o.resumeParam ?? RESUME_PARAM) + "=" + encodeURIComponent(this.resumeToken);
    }
    return u;
  }

  dial() {
    this.dropSocket(CLOSE_PAGE_AWAY, "redial");
    this.attempt++;
    this.stats.dials++;
    this.dialStart = this.now();
    let ws;
    try {
      ws = new this.WS(this.dialURL(), this.protocols);
    } catch (e) {
      this.emit("error", new HeartbeatError("EDIAL", "heartbeat: " + (e && e.message)));
      this.transition(CLOSED, "gave up");
      this.teardown();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => this.ws === ws && this.onOpen();
    ws.onmessage = (e) => this.ws === ws && this.onMessage(e.data);
    ws.onclose = (e) => this.ws === ws && this.onSocketClose(e.code, e.reason, e.wasClean);
    ws.onerror = () => {}; // a close follows every error
    this.schedule();
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

  onOpen() {
    const p = this.ws.protocol;
    if (!this.protocols.includes(p)) {
      this.dropSocket(CLOSE_PAGE_AWAY, "no heartbeat subprotocol");
      this.emit("error", new HeartbeatError("EPROTOCOL", "heartbeat: the server accepted no offered subprotocol (got " + JSON.stringify(p) + ")"));
      this.transition(CLOSED, "gave up");
      this.teardown();
      return;
    }
    const t = this.now();
    this.protocol = p;
    this.stats.opens++;
    this.aliveSince = t;
    this.lastEvidence = t;
    this.lastPing = null;
    this.unanswered = 0;
    this.probeBy = null;
    this.gap = this.o.interval;
    this.gapSeen = null;
    this.closeAdvice = false;
    this.detector.start(t);
    this.transition(ALIVE, "connected");
    this.emit("open", { protocol: p, connId: this.connId });
    this.schedule();
  }

  onMessage(data) {
    const t = this.now();
    if (this.state !== ALIVE && this.state !== SUSPECT) return;
    let size = typeof data === "string" ? data.length : data.byteLength ?? 0;
    if (!isHeartbeat(data)) {
      this.evidence(t, 0);
      if (size > this.o.maxMessageSize) {
        this.emit("error", new HeartbeatError("ETOOBIG", "heartbeat: message of " + size + " bytes exceeds maxMessageSize " + this.o.maxMessageSize + "; dropped"));
      } else {
        this.emit("message", { data });
      }
      this.schedule();
      return;
    }
    let m;
    try {
      m = typeof data === "string" ? decodeJSON(data) : decodeBinary(data);
    } catch (e) {
      this.evidence(t, 0); // still evidence of life, as in Go
      this.emit("error", e);
      this.schedule();
      return;
    }
    if (m.id) this.connId = m.id;
    if (m.t !== "pong" && m.rw > 0) this.advice = Math.min(m.rw, this.o.maxWindow);
    if (m.t === "ping" && m.ta > 0 && typeof this.detector.advise === "function") this.detector.advise(m.ta);
    // A round trip is measured, as in Go, only by the pong of the latest
    // ping, on this page's own clock: an older ping's pong says nothing of
    // the link now, and the wall clock can step.
    let rtt = 0;
    if (m.t === "pong" && m.seq > 0 && m.seq === this.seq && this.lastPing !== null) rtt = t - this.lastPing;
    this.evidence(t, rtt);
    switch (m.t) {
      case "ping":
        if (this.write({ t: "pong", seq: m.seq, ts: m.ts }) === "failed") {
          this.lose(t, "send failed", {}, "normal");
          return;
        }
        break;
      case "drain":
        if (m.to) this.nextURL = m.to;
        this.lose(t, "drain", {}, "advised");
        return;
      case "close":
        this.closeAdvice = true; // the socket close that follows is not terminal
        break;
    }
    this.schedule();
  }

  evidence(t, rtt) {
    // The first evidence after this page stood still spans the pause (and
    // a pong's round trip too): not the peer's lateness. As in Go, the
    // detector restarts its measurement rather than learn it.
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

  // write sends m: "sent"; "closing" when the socket is no longer open
  // (its close event follows, with the code that decides what comes next);
  // "failed" when the send threw, which loses the connection, as a failed
  // send does in Go.
  write(m) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return "closing";
    try {
      ws.send(this.protocol === SUBPROTOCOL_JSON ? encodeJSON(m) : encodeBinary(m));
      return "sent";
    } catch (e) {
      this.emit("error", new HeartbeatError("ESEND", "heartbeat: " + (e && e.message)));
      return "failed";
    }
  }

  ping(t) {
    if (this.lastPing !== null && t - this.lastPing < this.o.minPingInterval) return;
    this.seq++;
    if (this.write({ t: "ping", seq: this.seq, ts: Math.floor(this.wallNow()) }) === "failed") {
      this.lose(t, "send failed", {}, "normal");
      return;
    }
    // A ping to a closing socket counts as sent and lost: until its close
    // event comes, the detector's clock runs as for any unanswered ping
    // (and the next ping waits its turn instead of being retried at once).
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

  // ---- the one timer

  clearTimer() {
    if (this.timer !== null) this.clearTimeout(this.timer);
    this.timer = null;
    this.deadline = null;
  }

  schedule() {
    this.clearTimer();
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
    if (d === null || d === undefined) return;
    this.deadline = d;
    this.timer = this.setTimeout(() => {
      this.timer = null;
      this.wake();
    }, Math.max(0, d - this.now()));
  }

  // wake runs at the deadline, or late: a wake-up more than stallThreshold
  // past it means this page stood still (a frozen or throttled tab), so the
  // silence it now sees was not measured; it probes and gives the probe
  // max(dead − suspect, stallGrace) before it convicts, as fsm does.
  wake() {
    const t = this.now();
    const stalled = this.deadline !== null && t > this.deadline + this.o.stallThreshold;
    this.deadline = null;
    if (stalled) this.stall(t);
    this.advance(t, stalled);
    if (this.state !== CLOSED) this.schedule();
  }

  stall(t) {
    if ((this.state === ALIVE || this.state === SUSPECT) && this.probeBy === null) {
      const { suspect, dead } = this.detector.timeouts();
      this.probeBy = t + Math.max(dead - suspect, this.o.stallGrace);
      this.ping(t);
    }
  }

  advance(t, stalled) {
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
      this.lose(t, "unanswered", {}, "normal");
      return;
    }
    if (t >= this.nextPing()) this.ping(t);
  }

  // ---- losses and redials

  dialFailed(reason, extra = {}) {
    this.dropSocket(CLOSE_PAGE_AWAY, reason);
    this.transition(RECONNECTING, reason === "connect timeout" ? "connect timeout" : "dial failed", extra);
    this.planRedial("normal");
  }

  // lose: alive or suspect → dead, then → reconnecting (or closed).
  lose(t, reason, extra, mode) {
    const stable = this.aliveSince !== undefined && t - this.aliveSince >= this.o.stableAfter;
    if (stable) {
      this.attempt = 0;
      this.streakStart = t;
    }
    this.dropSocket(CLOSE_PAGE_AWAY, reason);
    this.transition(DEAD, reason, extra);
    if (mode === "terminal") {
      this.transition(CLOSED, "gave up", extra);
      this.teardown();
      return;
    }
    this.transition(RECONNECTING, "retry", extra);
    this.planRedial(mode);
  }

  // planRedial draws the delay before the next dial: policy.Advised (the
  // first dial of a streak uniform over the advised window, later ones
  // full jitter renumbered), or long for a policy violation (1008).
  planRedial(mode) {
    const o = this.o, t = this.now();
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

  onSocketClose(code, reason, wasClean) {
    const t = this.now();
    this.ws = null;
    this.emit("close", { code, reason, wasClean });
    const extra = { code, closeReason: reason };
    if (this.state === CONNECTING) {
      if (code >= 4000 && code <= 4999) return this.terminalFromConnecting(extra);
      return this.dialFailed("dial failed", extra);
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
    this.lose(t, "peer closed", extra, mode);
  }

  terminalFromConnecting(extra) {
    this.transition(CLOSED, "gave up", extra);
    this.teardown();
  }

  // ---- the page

  // onOnline: the network is back after an outage: a client waiting to
  // redial dials now; a connected one probes, since its socket may not
  // have survived the change.
  onOnline() {
    const was = this.offline;
    this.offline = false;
    if (!was) return;
    if (this.state === RECONNECTING) {
      this.clearTimer();
      this.attempt = 0;
      this.streakStart = this.now();
      this.redial("network online");
    } else if (this.state === ALIVE || this.state === SUSPECT) {
      this.probeNow();
    }
  }

  onVisibility() {
    if (!this.document || this.document.visibilityState !== "visible" || this.hiddenInCache) return;
    if (this.state === RECONNECTING) {
      this.clearTimer();
      this.redial("page visible");
    } else {
      this.onWake();
    }
  }

  // onWake: the page ran again after being frozen or hidden; the timers
  // may be late. Probe before convicting.
  onWake() {
    if (this.state === ALIVE || this.state === SUSPECT) {
      const t = this.now();
      if (t - this.lastEvidence > this.o.interval) this.probeNow();
      else this.schedule();
    } else if (this.state === RECONNECTING && this.document && this.document.visibilityState === "visible") {
      this.clearTimer();
      this.redial("page visible");
    }
  }

  probeNow() {
    const t = this.now();
    if (this.probeBy === null) {
      const { suspect, dead } = this.detector.timeouts();
      this.probeBy = t + Math.max(dead - suspect, this.o.stallGrace);
    }
    this.ping(t);
    this.schedule();
  }

  // The back/forward cache: a page entering it closes its socket
  // (an open socket keeps a page out of the cache, and the server would
  // otherwise hold it); a page restored from it dials at once.
  onPageHide(e) {
    if (!e || !e.persisted || this.state === CLOSED) return;
    this.hiddenInCache = true;
    this.dropSocket(CLOSE_PAGE_AWAY, "page hidden"); // a page may send only 1000 or 3000-4999
    this.clearTimer();
    this.redialAt = null; // no redial from the cache: pageshow dials
    if (this.state !== RECONNECTING) {
      this.transition(DEAD, "page hidden");
      this.transition(RECONNECTING, "retry");
    }
  }

  onPageShow(e) {
    if (!e || !e.persisted || !this.hiddenInCache || this.state === CLOSED) return;
    this.hiddenInCache = false;
    this.attempt = 0;
    this.streakStart = this.now();
    this.redial("page shown");
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
