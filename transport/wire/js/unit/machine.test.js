// The Machine alone, with no socket, timer or page: inputs with times in,
// actions out, as fsm.Machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS, SUBPROTOCOL_BINARY } from "../heartbeat.js";
import { Machine } from "../src/machine.js";

const kinds = (acts) => acts.map((a) => (a.do === "emit" ? a.type + (a.type === "change" ? ":" + a.ev.to : "") : a.do + (a.msg ? ":" + a.msg.t : "")));

test("the machine is driven by time and input alone", () => {
  const m = new Machine({ ...DEFAULTS }, () => 0.5);
  assert.deepEqual(kinds(m.start(0)), ["drop", "dial"]);
  assert.equal(m.deadline, DEFAULTS.connectTimeout);
  assert.deepEqual(kinds(m.opened(10, SUBPROTOCOL_BINARY, true)), ["change:alive", "open"]);
  assert.equal(m.deadline, 10 + DEFAULTS.interval, "the first ping after an idle interval");
  assert.deepEqual(kinds(m.wake(m.deadline)), ["send:ping"]);
  const seq = m.seq;
  assert.deepEqual(kinds(m.heartbeat(5047, { t: "pong", seq })), []);
  assert.equal(m.detector.rtt.n, 1, "the pong of the latest ping gave a round trip");
  // Silence: wake at each deadline until the verdict.
  const changes = [];
  for (let i = 0; i < 20 && m.state !== "reconnecting"; i++) {
    for (const a of m.wake(m.deadline)) if (a.do === "emit" && a.type === "change") changes.push(a.ev.to + "(" + a.ev.reason + ")");
  }
  assert.deepEqual(changes, ["suspect(silence)", "dead(unanswered)", "reconnecting(retry)"]);
  assert.ok(m.deadline > 0, "a redial is planned");
});

test("a send that failed is a loss, as in Go", () => {
  const m = new Machine({ ...DEFAULTS }, () => 0.5);
  m.start(0);
  m.opened(10, SUBPROTOCOL_BINARY, true);
  m.wake(m.deadline);
  const acts = m.sendFailed(5011, new Error("refused"));
  assert.deepEqual(kinds(acts), ["error", "drop", "change:dead", "change:reconnecting"]);
  assert.equal(acts[2].ev.reason, "send failed");
});
