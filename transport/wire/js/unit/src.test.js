// heartbeat.js is src/*.js joined (TestBundleIsCurrent checks the bytes):
// the parts must also load as modules of their own, and between them
// export everything the shipped file does, as the same kind of thing.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as shipped from "../heartbeat.js";
import * as constants from "../src/constants.js";
import * as codec from "../src/codec.js";
import * as detector from "../src/detector.js";
import * as machine from "../src/machine.js";
import * as client from "../src/client.js";

test("the parts export what heartbeat.js exports", () => {
  const parts = { ...constants, ...codec, ...detector, ...machine, ...client };
  for (const [name, v] of Object.entries(shipped)) {
    assert.ok(name in parts, name + " is in no part");
    assert.equal(typeof parts[name], typeof v, name);
  }
  assert.deepEqual(parts.DEFAULTS, shipped.DEFAULTS);
  assert.deepEqual([...parts.REASONS].sort(), [...shipped.REASONS].sort());
});

test("internal exports stay inside the shipped file", () => {
  for (const name of ["utf8Len", "probeGap", "Machine", "MAX_SAFE", "TYPES"]) assert.ok(!(name in shipped), name + " leaked into heartbeat.js's exports");
});
