// A fake clock and a fake WebSocket for the client's unit tests: time moves
// only when a test advances it, and a test plays the server.

export class FakeClock {
  constructor(start = 1000) {
    this.t = start;
    this.wall = 1700000000000;
    this.timers = new Map();
    this.next = 1;
    this.frozen = false;
  }
  now = () => this.t;
  wallNow = () => Math.floor(this.wall + this.t); // Date.now() is whole milliseconds
  setTimeout = (f, ms) => {
    const id = this.next++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), f });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  pending() {
    return this.timers.size;
  }
  // advance runs every timer due within ms, in order, moving time to each.
  // A client that keeps re-arming a timer already due would never let
  // time move: after 100,000 wake-ups in one advance the test fails.
  advance(ms) {
    const end = this.t + ms;
    for (let fired = 0; ; fired++) {
      if (fired > 100000) throw new Error("timer loop: 100,000 timers fired without time reaching " + end + " (stuck at " + this.t + ")");
      let best = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (best === null || tm.at < best[1].at || (tm.at === best[1].at && id < best[0]))) best = [id, tm];
      if (best === null) break;
      this.timers.delete(best[0]);
      this.t = Math.max(this.t, best[1].at);
      best[1].f();
    }
    this.t = end;
  }
  // freeze jumps time by ms without running timers (a frozen page), then
  // runs what is overdue: the timers fire late.
  freeze(ms) {
    this.t += ms;
    this.advance(0);
  }
}

export class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.protocol = "";
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  static reset() {
    FakeSocket.all = [];
  }
  static open() {
    return FakeSocket.all.filter((s) => s.readyState <= 1);
  }
  send(d) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(d);
  }
  close(code, reason) {
    // As browsers do: only 1000 and 3000-4999 may be sent.
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) throw new Error("InvalidAccessError: close code " + code);
    if (reason !== undefined && new TextEncoder().encode(reason).length > 123) throw new Error("SyntaxError: close reason over 123 bytes");
    if (this.readyState >= 2) return;
    this.readyState = 2;
    this.closedWith = { code, reason };
  }
  // The server's side:
  accept(protocol) {
    if (this.readyState !== 0) return; // the client gave up on it
    this.readyState = 1;
    this.protocol = protocol ?? this.protocols[0];
    this.onopen?.({});
  }
  deliver(data) {
    this.onmessage?.({ data });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
}

export class FakeTarget {
  constructor() {
    this.l = new Map();
    this.visibilityState = "visible";
  }
  addEventListener(t, f) {
    if (!this.l.has(t)) this.l.set(t, new Set());
    this.l.get(t).add(f);
  }
  removeEventListener(t, f) {
    this.l.get(t)?.delete(f);
  }
  fire(t, ev = {}) {
    for (const f of [...(this.l.get(t) ?? [])]) f(ev);
  }
  count() {
    let n = 0;
    for (const s of this.l.values()) n += s.size;
    return n;
  }
}

export class FakeStorage {
  constructor() {
    this.m = new Map();
  }
  getItem(k) {
    return this.m.has(k) ? this.m.get(k) : null;
  }
  setItem(k, v) {
    this.m.set(k, String(v));
  }
}
