// src/machine.js: the client's state machine, a pure function of time and input.
import { ALIVE, CLOSED, CLOSE_PAGE_AWAY, CONNECTING, DEAD, HeartbeatError, RECONNECTING, SUSPECT } from "./constants.js";
import { Adaptive, probeGap } from "./detector.js";

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
export /* internal */ class Machine {
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
