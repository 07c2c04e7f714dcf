// replay runs a conformance trace's scenario (traces.json) through the JS
// client on a fake clock; traces.test.js compares what it did with what the
// Go Machine did.
import { HeartbeatClient, SUBPROTOCOL_BINARY, encodeBinary, decodeBinary } from "../heartbeat.js";
import { FakeClock, FakeSocket, FakeTarget, FakeStorage } from "./fake.js";

// replay plays sc through a client and returns its actions, up to the first
// change to reconnecting or closed (where the backoff's random draw would
// follow, which the two machines do not share).
export function replay(sc) {
  const clock = new FakeClock(0);
  FakeSocket.reset();
  const got = [];
  let sock = null;
  class Socket extends FakeSocket {
    constructor(url, protocols) {
      super(url, protocols);
      sock = this;
      got.push({ at: clock.t, do: "dial" });
    }
    send(d) {
      super.send(d);
      const m = decodeBinary(d);
      got.push({ at: clock.t, do: m.t, seq: m.seq });
      if (m.t !== "ping") return;
      for (const a of sc.answers ?? []) {
        if (clock.t >= a.From && clock.t < a.To) {
          const self = this;
          clock.setTimeout(() => self.readyState === 1 && self.deliver(encodeBinary({ t: "pong", seq: m.seq, ts: m.ts })), a.After);
        }
      }
    }
  }
  const c = new HeartbeatClient("ws://h/ws", {
    WebSocket: Socket, now: clock.now, wallNow: clock.wallNow, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout,
    window: new FakeTarget(), document: new FakeTarget(), storage: new FakeStorage(), random: () => 0.5,
    protocols: [SUBPROTOCOL_BINARY],
  });
  const off = c.on("change", (e) => got.push({ at: clock.t, do: "change", from: e.from, to: e.to, reason: e.reason }));
  c.start();
  const to = (t) => clock.advance(Math.max(0, t - clock.t));
  for (const ev of sc.events ?? []) {
    to(ev.at);
    switch (ev.in) {
      case "open":
        sock.accept(SUBPROTOCOL_BINARY);
        break;
      case "ping":
        sock.deliver(encodeBinary({ t: "ping", seq: ev.seq, ts: clock.wallNow(), ...(ev.ta ? { ta: ev.ta } : {}) }));
        break;
      case "data":
        sock.deliver("application message");
        break;
      case "close":
        sock.drop(1006);
        break;
      case "freeze":
        clock.freeze(ev.until - clock.t);
        break;
      default:
        throw new Error("unknown event " + ev.in);
    }
  }
  to(sc.end);
  off();
  c.close();
  const end = got.findIndex((a) => a.do === "change" && (a.to === "reconnecting" || a.to === "closed"));
  return end < 0 ? got : got.slice(0, end + 1);
}

