// The conformance traces: traces.json holds scenarios of a client against a
// scripted server and the actions the Go Machine took in each
// (TestTracesFromMachine writes it). Replayed here through the JS client on a
// fake clock, the client must take the same actions — dials, pings, pongs,
// state changes with their reasons — within a millisecond of the same times.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { replay } from "./replay.js";

const { traces } = JSON.parse(readFileSync(new URL("./traces.json", import.meta.url)));

// Actions at the same moment may come in either order (a change and the
// ping it sends): both lists are compared in time order, ties by kind.
function canonical(actions) {
  const kind = (a) => a.do + " " + (a.seq ?? "") + " " + (a.to ?? "");
  return actions.map((a) => ({ ...a })).sort((a, b) => (Math.abs(a.at - b.at) > 1 ? a.at - b.at : kind(a) < kind(b) ? -1 : kind(a) > kind(b) ? 1 : 0));
}

function show(a) {
  return a ? a.at.toFixed(1) + " " + a.do + (a.seq ? " " + a.seq : "") + (a.to ? " " + a.from + "→" + a.to + " (" + a.reason + ")" : "") : "nothing";
}

test("traces.json has the scenarios", () => {
  assert.ok(traces.length >= 8, traces.length + " traces");
});

for (const sc of traces) {
  test("trace: " + sc.name, () => {
    const want = canonical(sc.expect);
    const got = canonical(replay(sc));
    for (let i = 0; i < Math.max(want.length, got.length); i++) {
      const w = want[i], g = got[i];
      const same = w && g && w.do === g.do && (w.seq ?? 0) === (g.seq ?? 0) && w.from === g.from && w.to === g.to && w.reason === g.reason && Math.abs(w.at - g.at) <= 1;
      if (!same) {
        const ctx = (l) => l.slice(Math.max(0, i - 2), i + 3).map(show).join("\n    ");
        assert.fail(`${sc.name}: action ${i}: Go Machine ${show(w)}, JS client ${show(g)}\n  Go:\n    ${ctx(want)}\n  JS:\n    ${ctx(got)}`);
      }
    }
  });
}
