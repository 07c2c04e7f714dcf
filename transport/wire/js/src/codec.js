// src/codec.js: package wire's heartbeat messages, JSON and binary.
import { HeartbeatError, MAX_CONN_ID, MAX_MESSAGE_SIZE, MAX_META, MAX_META_KEY, MAX_META_VALUE, MAX_REASON, MAX_SAFE, MAX_TARGET, MAX_TIMEOUT_ADVICE_MS, MAX_WINDOW_MS, TYPES, VERSION } from "./constants.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export /* internal */ function utf8Len(s) {
  return enc.encode(s).length;
}

function malformed(detail) {
  return new HeartbeatError("EMALFORMED", "heartbeat: malformed heartbeat message: " + detail);
}

function checkStr(field, s, limit) {
  if (typeof s !== "string") throw malformed(field + " is not a string");
  if (utf8Len(s) > limit) throw malformed(field + " exceeds " + limit + " bytes");
}

function validate(m) {
  if (!TYPES.includes(m.t) || m.t === "") throw malformed("type " + String(m.t).slice(0, 16));
  for (const k of ["seq", "ts"]) {
    if (!Number.isSafeInteger(m[k])) throw malformed(k + " is not a safe integer");
  }
  if (m.seq < 0) throw malformed("seq is negative");
  if (!Number.isSafeInteger(m.rw) || m.rw < 0 || m.rw > MAX_WINDOW_MS) throw malformed("rw out of range");
  checkStr("id", m.id, MAX_CONN_ID);
  checkStr("reason", m.reason, MAX_REASON);
  checkStr("to", m.to, MAX_TARGET);
  if (typeof m.meta !== "object" || m.meta === null || Array.isArray(m.meta)) throw malformed("meta is not an object");
  const keys = Object.keys(m.meta);
  if (keys.length > MAX_META) throw malformed("too many meta entries");
  for (const k of keys) {
    if (k === "") throw malformed("empty meta key");
    checkStr("meta key", k, MAX_META_KEY);
    checkStr("meta value", m.meta[k], MAX_META_VALUE);
  }
}

// clampTA is the server's timeout advice (ms) as wire reads it: clamped to
// [0, 10 min] and truncated to centiseconds, never rejected (a bad advice
// must not cost the heartbeat it rides on); anything but a number is none.
function clampTA(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return 0;
  return Math.min(Math.max(Math.floor(x / 10) * 10, 0), MAX_TIMEOUT_ADVICE_MS);
}

function normal(m) {
  return {
    t: m.t, seq: m.seq ?? 0, ts: m.ts ?? 0, id: m.id ?? "", rw: m.rw ?? 0, ta: clampTA(m.ta),
    reason: m.reason ?? "", to: m.to ?? "", meta: m.meta ?? {},
  };
}

// isHeartbeat reports whether a message (string or Uint8Array) is a
// heartbeat rather than an application message, as wire.IsHeartbeat does.
export function isHeartbeat(data) {
  if (typeof data === "string") return data.startsWith('{"hb":');
  const b = toBytes(data);
  if (b === null) return false;
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x68) return true;
  const p = [0x7b, 0x22, 0x68, 0x62, 0x22, 0x3a];
  return b.length >= 6 && p.every((c, i) => b[i] === c);
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

// encodeJSON returns m's JSON form (a string), as wire.AppendJSON writes it.
export function encodeJSON(msg) {
  const m = normal(msg);
  validate(m);
  let s = '{"hb":1,"t":"' + m.t + '","seq":' + m.seq + ',"ts":' + m.ts;
  if (m.id) s += ',"id":' + JSON.stringify(m.id);
  if (m.rw > 0) s += ',"rw":' + m.rw;
  if (m.ta > 0) s += ',"ta":' + m.ta;
  if (m.reason) s += ',"reason":' + JSON.stringify(m.reason);
  if (m.to) s += ',"to":' + JSON.stringify(m.to);
  const keys = Object.keys(m.meta).sort();
  if (keys.length) s += ',"meta":{' + keys.map((k) => JSON.stringify(k) + ":" + JSON.stringify(m.meta[k])).join(",") + "}";
  s += "}";
  if (utf8Len(s) > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  return s;
}

// decodeJSON decodes the JSON form; it throws a HeartbeatError (EMALFORMED).
export function decodeJSON(s) {
  if (typeof s !== "string") throw malformed("not a string");
  if (s.length > MAX_MESSAGE_SIZE || utf8Len(s) > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  if (!s.startsWith('{"hb":')) throw malformed('no JSON heartbeat prefix (want {"hb":)');
  let j;
  try {
    j = JSON.parse(s);
  } catch (e) {
    throw malformed(String(e.message).slice(0, 80));
  }
  if (j.hb !== VERSION) throw malformed("version " + JSON.stringify(j.hb) + ", want 1");
  const m = normal(j);
  validate(m);
  return m;
}

function putUvarint(out, v) {
  let x = BigInt(v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function putStr(out, s) {
  const b = enc.encode(s);
  putUvarint(out, b.length);
  for (const c of b) out.push(c);
}

// encodeBinary returns m's binary form (a Uint8Array), as wire.AppendBinary
// writes it.
export function encodeBinary(msg) {
  const m = normal(msg);
  validate(m);
  const keys = Object.keys(m.meta).sort();
  let flags = 0;
  if (m.id) flags |= 1;
  if (m.rw > 0) flags |= 2;
  if (m.reason) flags |= 4;
  if (m.to) flags |= 8;
  if (keys.length) flags |= 16;
  if (m.ta >= 10) flags |= 32; // the timeout advice: version 2
  const out = [0xff, 0x68, flags & 32 ? 2 : VERSION, TYPES.indexOf(m.t), flags];
  putUvarint(out, m.seq);
  const ts = BigInt(m.ts);
  putUvarint(out, ts < 0n ? ~(ts << 1n) : ts << 1n); // zig-zag, as Go's AppendVarint
  if (flags & 1) putStr(out, m.id);
  if (flags & 2) putUvarint(out, m.rw);
  if (flags & 4) putStr(out, m.reason);
  if (flags & 8) putStr(out, m.to);
  if (flags & 16) {
    putUvarint(out, keys.length);
    for (const k of keys) {
      putStr(out, k);
      putStr(out, m.meta[k]);
    }
  }
  if (flags & 32) putUvarint(out, Math.floor(m.ta / 10));
  if (out.length > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  return new Uint8Array(out);
}

// decodeBinary decodes the binary form; it throws a HeartbeatError
// (EMALFORMED). Every length is checked against what remains before it is
// read, as wire.DecodeBinary does.
export function decodeBinary(data) {
  const b = toBytes(data);
  if (b === null) throw malformed("not bytes");
  if (b.length > MAX_MESSAGE_SIZE) throw malformed("message exceeds " + MAX_MESSAGE_SIZE + " bytes");
  if (b.length < 5 || b[0] !== 0xff || b[1] !== 0x68) throw malformed("no binary heartbeat header");
  if (b[2] !== VERSION && b[2] !== 2) throw malformed("version " + b[2] + ", want 1 or 2");
  const t = TYPES[b[3]];
  if (!t) throw malformed("type " + b[3]);
  const flags = b[4];
  if (flags & ~(b[2] === 2 ? 63 : 31)) throw malformed("unknown flags");
  let off = 5;
  const uvarint = (field, limit) => {
    let x = 0n, shift = 0n;
    for (let i = 0; ; i++) {
      if (off >= b.length || i >= 10) throw malformed(field + ": truncated or overlong varint");
      const c = b[off++];
      x |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) break;
      shift += 7n;
    }
    if (x > BigInt(limit)) throw malformed(field + " exceeds " + limit);
    return x;
  };
  const str = (field, limit) => {
    const n = Number(uvarint(field, limit));
    if (n > b.length - off) throw malformed(field + ": length " + n + " claimed, only " + (b.length - off) + " bytes remain");
    let s;
    try {
      s = dec.decode(b.subarray(off, off + n));
    } catch {
      throw malformed(field + " is not valid UTF-8");
    }
    off += n;
    return s;
  };
  const m = { t, seq: 0, ts: 0, id: "", rw: 0, ta: 0, reason: "", to: "", meta: {} };
  m.seq = Number(uvarint("seq", MAX_SAFE));
  const z = uvarint("ts", 2n ** 64n - 1n);
  const ts = z & 1n ? ~(z >> 1n) : z >> 1n;
  if (ts > BigInt(MAX_SAFE) || ts < -BigInt(MAX_SAFE)) throw malformed("ts out of range");
  m.ts = Number(ts);
  if (flags & 1) m.id = str("id", MAX_CONN_ID);
  if (flags & 2) m.rw = Number(uvarint("rw", MAX_WINDOW_MS));
  if (flags & 4) m.reason = str("reason", MAX_REASON);
  if (flags & 8) m.to = str("to", MAX_TARGET);
  if (flags & 16) {
    const n = Number(uvarint("meta", MAX_META));
    if (n * 2 > b.length - off) throw malformed("meta: " + n + " entries claimed");
    for (let i = 0; i < n; i++) {
      const k = str("meta key", MAX_META_KEY);
      const v = str("meta value", MAX_META_VALUE);
      if (k === "" || Object.hasOwn(m.meta, k)) throw malformed("empty or duplicate meta key");
      m.meta[k] = v;
    }
  }
  if (flags & 32) {
    const cs = uvarint("ta", 2n ** 64n - 1n);
    m.ta = Number(cs > BigInt(MAX_TIMEOUT_ADVICE_MS / 10) ? BigInt(MAX_TIMEOUT_ADVICE_MS / 10) : cs) * 10;
  }
  if (off !== b.length) throw malformed(b.length - off + " bytes after the last field");
  return m;
}
