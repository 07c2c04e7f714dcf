import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import {
  HeartbeatClient, DEFAULTS, encodeJSON, encodeBinary, decodeJSON, decodeBinary,
  SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, CLOSE_PAGE_AWAY, RESUME_PARAM, RESUME_KEY,
} from "../heartbeat.js";
import { FakeClock, FakeSocket, FakeTarget, FakeStorage } from "./fake.js";
import { readFileSync } from "node:fs";

// The transitions fsm.Declaration allows (TestTransitionsMatchFSM checks
// the file against it): every change the client makes must be one.
const legal = new Set(JSON.parse(readFileSync(new URL("./transitions.json", import.meta.url))));

let clock, win, doc, storage;

beforeEach(() => {
  clock = new FakeClock();
  win = new FakeTarget();
  doc = new FakeTarget();
  storage = new FakeStorage();
  FakeSocket.reset();
});

// mk starts a client on the fakes; every step of the clock checks that the
// client never holds more than one socket that is open or opening.
function mk(opts = {}) {
  const c = new HeartbeatClient("ws://h/ws", {
    WebSocket: FakeSocket, now: clock.now, wallNow: clock.wallNow, setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout, window: win, document: doc, storage, random: () => 0.5, ...opts,
  });
  c.changes = [];
  c.errors = [];
  c.on("change", (ch) => {
    assert.ok(legal.has(`${ch.from}>${ch.to}`), `illegal transition ${ch.from} → ${ch.to} (${ch.reason})`);
    c.changes.push(ch);
  });
  c.on("error", (e) => c.errors.push(e));
  return c.start();
}
const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const oneSocket = () => assert.ok(FakeSocket.open().length <= 1, "more than one socket open");
const trail = (c) => c.changes.map((ch) => `${ch.to}(${ch.reason})`).join(" ");
function ping(s, seq, rw = 0) {
  const m = { t: "ping", seq, ts: 5, rw, id: "c-1" };
  s.deliver(s.protocol === SUBPROTOCOL_JSON ? encodeJSON(m) : encodeBinary(m).buffer);
}
function decode(d) {
  return typeof d === "string" ? decodeJSON(d) : decodeBinary(d);
}
// serve answers every ping the client sent on s and pings it every ms.
function healthy(s, ms, total, rw = 0) {
  let seq = 0;
  for (let t = 0; t < total; t += ms) {
    clock.advance(ms);
    for (const d of s.sent.splice(0)) {
      const m = decode(d);
      if (m.t === "ping") s.deliver(s.protocol === SUBPROTOCOL_JSON ? encodeJSON({ t: "pong", seq: m.seq, ts: m.ts }) : encodeBinary({ t: "pong", seq: m.seq, ts: m.ts }).buffer);
    }
    ping(s, ++seq, rw);
    oneSocket();
  }
}

test("defaults equal the Go defaults; first timeouts are 6 s and 7 s, as policy.Adaptive{}", () => {
  const c = mk();
  assert.equal(DEFAULTS.interval, 5000);
  assert.deepEqual(c.timeouts(), { suspect: 6000, dead: 7000 });
  assert.equal(c.detector.bound(), 35000); // Adaptive.DetectionBound without the round trip
});

test("offers both subprotocols in order, binary first, and goes alive", () => {
  const c = mk();
  assert.deepEqual(last().protocols, [SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON]);
  last().accept(SUBPROTOCOL_JSON);
  assert.equal(c.state, "alive");
  assert.equal(trail(c), "alive(connected)");
  assert.equal(c.protocol, SUBPROTOCOL_JSON);
});

test("a server that accepts no offered subprotocol ends the client", () => {
  const c = mk();
  last().accept("");
  assert.equal(c.state, "closed");
  assert.equal(c.errors[0].code, "EPROTOCOL");
  clock.advance(120000);
  assert.equal(FakeSocket.all.length, 1, "redialed a server that does not speak the heartbeat");
});

for (const proto of [SUBPROTOCOL_JSON, SUBPROTOCOL_BINARY]) {
  test(`answers pings with pongs and learns the advice (${proto})`, () => {
    const c = mk();
    const s = last();
    s.accept(proto);
    ping(s, 42, 7000);
    const m = decode(s.sent[0]);
    assert.deepEqual([m.t, m.seq, m.ts], ["pong", 42, 5]);
    assert.equal(c.advice, 7000);
    assert.equal(c.connId, "c-1");
  });
}

test("a healthy server keeps the client alive for ten minutes", () => {
  const c = mk();
  last().accept(SUBPROTOCOL_BINARY);
  healthy(last(), 5000, 600000);
  assert.equal(trail(c), "alive(connected)");
  assert.equal(FakeSocket.all.length, 1);
});

test("a silent server: suspect at 6 s, dead at 7 s, then a redial", () => {
  const c = mk();
  last().accept(SUBPROTOCOL_BINARY);
  const t0 = clock.now();
  for (let i = 0; i < 200; i++) {
    clock.advance(100);
    oneSocket();
  }
  const at = (to) => c.changes.find((ch) => ch.to === to).at - t0;
  assert.equal(at("suspect"), 6000);
  assert.equal(at("dead"), 7000);
  assert.ok(decode(FakeSocket.all[0].sent[0]).t === "ping", "no probe before the verdict");
  assert.match(trail(c), /^alive\(connected\) suspect\(silence\) dead\(unanswered\) reconnecting\(retry\)/);
  assert.equal(FakeSocket.all[0].readyState, 2, "dead socket not closed");
});

test("a ping's timeout advice holds a silent server's verdict to it; hostile advice is clamped or ignored", () => {
  for (const [proto, ta, dead] of [
    [SUBPROTOCOL_JSON, 20000, 20000],
    [SUBPROTOCOL_BINARY, 20000, 20000],
    [SUBPROTOCOL_JSON, 36e5, 35000], // an hour: clamped to the detector's bound, 5 s + 6 × 5 s
    [SUBPROTOCOL_JSON, 5, 7000], // 5 ms: no advice, the client's own 7 s
    [SUBPROTOCOL_JSON, -1, 7000],
  ]) {
    FakeSocket.reset();
    const c = mk();
    last().accept(proto);
    const m = { t: "ping", seq: 1, ts: 5, ta };
    last().deliver(proto === SUBPROTOCOL_JSON ? JSON.stringify({ hb: 1, ...m }) : encodeBinary({ ...m, ta: Math.max(ta, 0) }).buffer);
    const t0 = clock.now();
    for (let i = 0; i < 400 && c.state !== "reconnecting"; i++) clock.advance(100);
    const at = c.changes.find((ch) => ch.to === "dead").at - t0;
    assert.equal(at, dead, `${proto} ta ${ta}: dead after ${at} ms`);
    assert.equal(c.errors.length, 0, `${proto} ta ${ta}: the advice cost the heartbeat`);
    c.close();
  }
});

test("the first redial after a stable connection is drawn over the advised window", () => {
  for (const r of [0, 0.25, 0.99]) {
    FakeSocket.reset();
    const c = mk({ random: () => r });
    last().accept(SUBPROTOCOL_BINARY);
    healthy(last(), 1000, 10000, 8000);
    const lost = clock.now();
    last().drop(1006);
    assert.equal(c.state, "reconnecting");
    clock.advance(8000 * r - 1);
    assert.equal(FakeSocket.all.length, 1, "redialed before the draw");
    clock.advance(1);
    assert.equal(FakeSocket.all.length, 2);
    assert.equal(Math.round(c.changes.at(-1).at - lost), Math.round(8000 * r));
    c.close();
  }
});

test("without advice the redials follow full jitter from 1 s", () => {
  const c = mk({ random: () => 0.999 });
  last().drop(1006); // the first dial fails
  assert.equal(c.state, "reconnecting");
  const delays = [];
  for (let i = 0; i < 7; i++) {
    const n = FakeSocket.all.length, t = clock.now();
    while (FakeSocket.all.length === n) clock.advance(10);
    delays.push(Math.round((clock.now() - t) / 1000));
    last().drop(1006);
    oneSocket();
  }
  assert.deepEqual(delays, [2, 4, 8, 16, 30, 30, 30]); // 0.999 of 2^(n-1) s, capped at 30 s
});

test("close() closes the socket even with an overlong reason", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_JSON);
  c.close("é".repeat(100));
  assert.equal(s.closedWith.code, 1000);
  assert.equal(s.closedWith.reason, "é".repeat(61));
  assert.equal(c.state, "closed");
  assert.equal(trail(c), "alive(connected) closed(user close)");
});

test("close 1000 from the server is final: no redial", () => {
  const c = mk();
  last().accept(SUBPROTOCOL_JSON);
  last().drop(1000, "bye");
  assert.equal(c.state, "closed");
  assert.equal(c.changes.at(-1).code, 1000);
  clock.advance(3600000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(clock.pending(), 0, "a timer outlived the client");
  assert.equal(win.count() + doc.count(), 0, "listeners left behind");
});

test("close 1000 after a close heartbeat with a window redials within it", () => {
  const c = mk();
  last().accept(SUBPROTOCOL_JSON);
  last().deliver(encodeJSON({ t: "close", reason: "restart", rw: 4000 }));
  last().drop(1000, "restart");
  assert.equal(c.state, "reconnecting");
  clock.advance(4000);
  assert.equal(FakeSocket.all.length, 2);
});

test("close 4xxx goes to the application and is final", () => {
  const c = mk();
  const closes = [];
  c.on("close", (e) => closes.push(e));
  last().accept(SUBPROTOCOL_JSON);
  last().drop(4401, "unauthorised");
  assert.deepEqual(closes, [{ code: 4401, reason: "unauthorised", wasClean: true }]);
  assert.equal(c.state, "closed");
  assert.equal(c.changes.at(-1).closeReason, "unauthorised");
  clock.advance(3600000);
  assert.equal(FakeSocket.all.length, 1);
});

test("close 1008 backs off long; 1001, 1009 and 1011 redial", () => {
  for (const [code, min, err] of [[1008, 15000, "EPOLICY"], [1001, 0, undefined], [1009, 0, "ETOOBIG"], [1011, 0, "ESERVER"]]) {
    FakeSocket.reset();
    const c = mk({ random: () => 0 });
    last().accept(SUBPROTOCOL_JSON);
    last().drop(code, "x");
    assert.equal(c.state, "reconnecting", String(code));
    assert.equal(c.errors[0]?.code, err);
    clock.advance(min - 1);
    if (min > 0) assert.equal(FakeSocket.all.length, 1, `${code} redialed before ${min} ms`);
    clock.advance(1);
    assert.equal(FakeSocket.all.length, 2, `${code} did not redial`);
    c.close();
  }
});

test("a frozen page probes before it convicts, and a live server clears it", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_BINARY);
  healthy(s, 5000, 30000);
  s.sent.length = 0;
  clock.freeze(60000); // the tab was frozen a minute; the server's pings queued
  assert.notEqual(c.state, "dead", "convicted on waking");
  const probe = s.sent.map(decode).find((m) => m.t === "ping");
  assert.ok(probe, "no probe on waking");
  s.deliver(encodeBinary({ t: "pong", seq: probe.seq, ts: probe.ts }).buffer);
  assert.equal(c.state, "alive");
  assert.ok(!c.changes.some((ch) => ch.to === "dead"));
  assert.ok(c.changes.some((ch) => ch.reason === "local stall"), trail(c));
});

test("a frozen page whose server is gone is convicted only after the probe's grace", () => {
  const c = mk();
  last().accept(SUBPROTOCOL_BINARY);
  healthy(last(), 5000, 30000);
  clock.freeze(60000);
  const woke = clock.now();
  while (c.state !== "reconnecting") clock.advance(10);
  const dead = c.changes.find((ch) => ch.to === "dead").at;
  assert.ok(dead - woke >= DEFAULTS.stallGrace, `dead ${dead - woke} ms after waking`);
  assert.ok(dead - woke <= 11000, `dead ${dead - woke} ms after waking`);
});

test("online after offline redials at once", () => {
  const c = mk({ backoffBase: 60000, backoffCap: 60000 });
  last().drop(1006);
  win.fire("offline");
  clock.advance(100);
  assert.equal(FakeSocket.all.length, 1);
  win.fire("online");
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(c.changes.at(-1).reason, "network online");
  win.fire("online"); // a second online without offline: nothing
  assert.equal(FakeSocket.all.length, 2);
});

test("online after offline on an open socket probes it", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_JSON);
  clock.advance(200);
  win.fire("offline");
  win.fire("online");
  assert.equal(decode(s.sent.at(-1)).t, "ping");
  assert.equal(c.state, "alive");
});

test("a hidden page becoming visible with a dead socket redials at once", () => {
  const c = mk({ backoffBase: 60000, backoffCap: 60000 });
  doc.visibilityState = "hidden";
  last().drop(1006);
  clock.advance(100);
  assert.equal(FakeSocket.all.length, 1);
  doc.visibilityState = "visible";
  doc.fire("visibilitychange");
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(c.changes.at(-1).reason, "page visible");
});

test("the back/forward cache: pagehide closes with 4001 (away, not done), pageshow redials", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_JSON);
  win.fire("pagehide", { persisted: true });
  assert.deepEqual(s.closedWith, { code: CLOSE_PAGE_AWAY, reason: "page hidden" });
  assert.equal(trail(c), "alive(connected) dead(page hidden) reconnecting(retry)");
  assert.equal(clock.pending(), 0, "a timer runs in the cache");
  clock.advance(3600000);
  assert.equal(FakeSocket.all.length, 1, "dialed from the cache");
  win.fire("pageshow", { persisted: true });
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(c.changes.at(-1).reason, "page shown");
});

test("the resume token is made once per tab and sent on every dial", () => {
  const c = mk();
  const tok = c.resumeToken;
  assert.match(tok, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(storage.getItem(RESUME_KEY), tok);
  assert.equal(new URL(last().url).searchParams.get(RESUME_PARAM), tok);
  last().drop(1006);
  clock.advance(60000);
  assert.equal(new URL(last().url).searchParams.get(RESUME_PARAM), tok);
  c.close();
  const reloaded = mk(); // a reload: same sessionStorage
  assert.equal(reloaded.resumeToken, tok);
  storage.setItem(RESUME_KEY, "not a token");
  assert.notEqual(mk().resumeToken, "not a token");
  assert.equal(new URL(mk({ resume: false }) && last().url).searchParams.get(RESUME_PARAM), null);
});

test("send is rejected while disconnected and for reserved prefixes", () => {
  const c = mk();
  assert.throws(() => c.send("hi"), (e) => e.code === "ENOTCONNECTED");
  last().accept(SUBPROTOCOL_JSON);
  c.send("hi");
  assert.equal(last().sent.at(-1), "hi");
  assert.throws(() => c.send('{"hb":1}'), (e) => e.code === "ERESERVED");
  assert.throws(() => c.send(new Uint8Array([0xff, 0x68])), (e) => e.code === "ERESERVED");
});

test("malformed and oversized frames raise an error event and keep the connection", () => {
  const c = mk({ maxMessageSize: 100 });
  const got = [];
  c.on("message", (m) => got.push(m.data));
  const s = last();
  s.accept(SUBPROTOCOL_BINARY);
  s.deliver('{"hb":1,"t":"ping","seq":');
  s.deliver(new Uint8Array([0xff, 0x68, 1, 1, 1, 0, 0, 60]).buffer);
  s.deliver("x".repeat(101));
  s.deliver("app");
  assert.deepEqual(c.errors.map((e) => e.code), ["EMALFORMED", "EMALFORMED", "ETOOBIG"]);
  assert.deepEqual(got, ["app"]);
  assert.equal(c.state, "alive");
});

test("drain: reconnect to the target within the window", () => {
  const c = mk({ random: () => 0.5 });
  last().accept(SUBPROTOCOL_JSON);
  last().deliver(encodeJSON({ t: "drain", rw: 2000, to: "ws://other/ws" }));
  assert.equal(c.state, "reconnecting");
  clock.advance(1000);
  assert.ok(last().url.startsWith("ws://other/ws?"), last().url);
});

test("one socket at any moment across a hundred losses of every kind", () => {
  const c = mk({ random: () => 0.3 });
  const codes = [1006, 1001, 1011, 1009, 1006];
  for (let i = 0; i < 100; i++) {
    if (i % 3 === 0) last().accept(SUBPROTOCOL_BINARY);
    oneSocket();
    if (i % 4 === 0) win.fire("offline"), win.fire("online");
    if (i % 5 === 0) doc.fire("visibilitychange");
    oneSocket();
    if (last().readyState <= 1) last().drop(codes[i % codes.length]);
    clock.advance(2000 + (i % 7) * 1000);
    oneSocket();
  }
  assert.notEqual(c.state, "closed");
});

test("a lost server is closed with 4001, so the server keeps the session; only close() sends 1000", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_JSON);
  clock.advance(60000); // the server never answers: unanswered, then a redial
  assert.equal(s.closedWith.code, CLOSE_PAGE_AWAY); // close() sends 1000: see above
});

test("a ping whose send throws loses the connection (send failed), as in Go, and does not spin", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_BINARY);
  s.send = () => {
    throw new Error("the socket refused the frame");
  };
  let fired = 0;
  const setT = clock.setTimeout;
  clock.setTimeout = (f, ms) => setT(() => (fired++, f()), ms);
  clock.advance(6000); // the first ping is due after 5 s of idle line
  assert.match(trail(c), /^alive\(connected\) dead\(send failed\) reconnecting\(retry\)/);
  assert.equal(c.errors[0].code, "ESEND");
  assert.ok(fired < 10, fired + " timer wake-ups in 6 s");
});

test("a ping to a socket that is already closing counts as sent and lost; its close event decides", () => {
  const c = mk();
  const s = last();
  s.accept(SUBPROTOCOL_BINARY);
  s.readyState = 2; // the server's close frame arrived; the close event has not
  clock.advance(5500);
  assert.equal(c.unanswered, 1, "the ping was not counted");
  assert.equal(trail(c), "alive(connected)");
  s.drop(1000);
  assert.equal(trail(c), "alive(connected) dead(peer closed) closed(gave up)", "a 1000 close is still terminal");
});

test("a listener reads the state its change speaks of, and may close the client from it", () => {
  const c = mk();
  const seen = [];
  c.on("change", (ch) => {
    seen.push(ch.to + (c.state === ch.to ? "" : " but state " + c.state));
    if (ch.to === "dead") c.close("from the listener");
  });
  last().accept(SUBPROTOCOL_BINARY);
  clock.advance(60000); // the server never answers: dead, and the listener closes
  assert.deepEqual(seen, ["alive", "suspect", "dead", "reconnecting", "closed"]);
  assert.equal(c.state, "closed");
  assert.equal(FakeSocket.all.length, 1, "redialed after close");
  assert.equal(clock.pending(), 0, "a timer left armed after close");
  assert.equal(FakeSocket.open().length, 0);
});

test("close from the listener of a redial's change opens no socket", () => {
  const c = mk();
  c.on("change", (ch) => {
    if (ch.to === "connecting") c.close();
  });
  last().drop(1006); // the first dial fails: reconnecting, then the redial
  clock.advance(60000);
  assert.equal(c.state, "closed");
  assert.equal(FakeSocket.all.length, 1, "the redial opened a socket after close");
});
