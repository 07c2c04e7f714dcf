import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decodeBinary, decodeJSON, encodeBinary, encodeJSON, isHeartbeat, MAX_MESSAGE_SIZE } from "../heartbeat.js";

// vectors.json holds messages as package wire encodes them; the Go test
// TestVectorsMatchWire checks the same file against wire, so the two
// implementations cannot drift apart unnoticed.
const vectors = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url)));
const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

test("golden vectors decode and re-encode byte for byte", () => {
  for (const [bin, json] of vectors) {
    const a = decodeBinary(unhex(bin));
    const b = decodeJSON(json);
    assert.deepEqual(a, b);
    assert.equal(hex(encodeBinary(a)), bin);
    assert.equal(encodeJSON(b), json);
  }
});

test("malformed binary is rejected with EMALFORMED", () => {
  const good = unhex(vectors[0][0]);
  const cases = {
    truncated: good.subarray(0, good.length - 2),
    trailing: new Uint8Array([...good, 0]),
    version: new Uint8Array([0xff, 0x68, 3, 1, 0, 0, 0]),
    v1WithTimeoutFlag: new Uint8Array([0xff, 0x68, 1, 1, 32, 0, 0, 1]),
    type: new Uint8Array([0xff, 0x68, 1, 9, 0, 0, 0]),
    flags: new Uint8Array([0xff, 0x68, 1, 1, 0x40, 0, 0]),
    // an id claiming 60 bytes with 1 present: the length is checked first
    claimed: new Uint8Array([0xff, 0x68, 1, 1, 1, 0, 0, 60, 0x41]),
    overlong: new Uint8Array([0xff, 0x68, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]),
    unsafeSeq: new Uint8Array([0xff, 0x68, 1, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0]),
    oversized: new Uint8Array(MAX_MESSAGE_SIZE + 1).fill(0xff),
  };
  for (const [name, b] of Object.entries(cases)) {
    assert.throws(() => decodeBinary(b), (e) => e.code === "EMALFORMED", name);
  }
});

test("malformed JSON is rejected with EMALFORMED", () => {
  const cases = [
    '{"hb":2,"t":"ping","seq":1,"ts":1}',
    '{"hb":1,"t":"hello","seq":1,"ts":1}',
    '{"hb":1,"t":"ping","seq":1.5,"ts":1}',
    '{"hb":1,"t":"ping","seq":9007199254740993,"ts":1}',
    '{"hb":1,"t":"ping","seq":1,"ts":1,"rw":-1}',
    '{"hb":1,"t":"ping","seq":1,"ts":1,"id":"' + "x".repeat(65) + '"}',
    '{"hb":1,"t":"ping"',
    '{"hb":1,"t":"ping","seq":1,"ts":1,"pad":"' + "x".repeat(MAX_MESSAGE_SIZE) + '"}',
  ];
  for (const s of cases) assert.throws(() => decodeJSON(s), (e) => e.code === "EMALFORMED", s.slice(0, 60));
});

test("timeout advice: JSON member ta and binary version 2, clamped never rejected", () => {
  const m = { t: "ping", seq: 7, ts: 1700000000000, ta: 18430 };
  assert.equal(decodeJSON(encodeJSON(m)).ta, 18430);
  const b = encodeBinary(m);
  assert.equal(b[2], 2, "version 2 when the advice is there");
  assert.equal(b.length - encodeBinary({ ...m, ta: 0 }).length, 2, "2 bytes of advice");
  assert.equal(encodeBinary({ ...m, ta: 0 })[2], 1, "version 1 without");
  assert.equal(decodeBinary(b).ta, 18430);
  assert.equal(decodeJSON('{"hb":1,"t":"ping","seq":1,"ts":1,"ta":99999999999}').ta, 600000);
  assert.equal(decodeJSON('{"hb":1,"t":"ping","seq":1,"ts":1,"ta":-5}').ta, 0);
  assert.equal(decodeJSON('{"hb":1,"t":"ping","seq":1,"ts":1,"ta":"x"}').ta, 0);
  assert.equal(decodeJSON('{"hb":1,"t":"ping","seq":1,"ts":1,"ta":1234.9}').ta, 1230);
  assert.equal(decodeBinary(new Uint8Array([0xff, 0x68, 2, 1, 32, 1, 0, 0xff, 0xff, 0x03])).ta, 600000);
});

test("isHeartbeat tells heartbeats from application messages", () => {
  assert.ok(isHeartbeat('{"hb":1}'));
  assert.ok(isHeartbeat(unhex(vectors[0][0]).buffer));
  assert.ok(isHeartbeat(new TextEncoder().encode('{"hb":1')));
  assert.ok(!isHeartbeat('{"app":1}'));
  assert.ok(!isHeartbeat(new Uint8Array([1, 2, 3])));
});
