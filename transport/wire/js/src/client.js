// src/client.js: HeartbeatClient, which carries out its Machine's actions on a socket, a timer and the page.
import { ALIVE, CLOSED, CONNECTING, DEFAULTS, HeartbeatError, MAX_REASON, RESUME_KEY, RESUME_PARAM, SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, SUSPECT } from "./constants.js";
import { decodeBinary, decodeJSON, encodeBinary, encodeJSON, isHeartbeat, utf8Len } from "./codec.js";
import { Machine } from "./machine.js";

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
