// Type declarations for heartbeat.js, the browser client of
// github.com/heartbeat-go/heartbeat.

export declare const VERSION: 1;
export declare const SUBPROTOCOL_JSON: "heartbeat.v1.json";
export declare const SUBPROTOCOL_BINARY: "heartbeat.v1.bin";
export declare const CONNECTING: "connecting";
export declare const ALIVE: "alive";
export declare const SUSPECT: "suspect";
export declare const DEAD: "dead";
export declare const RECONNECTING: "reconnecting";
export declare const CLOSED: "closed";
export declare const MAX_MESSAGE_SIZE: 1024;
/** The query parameter that carries the resume token on every dial. */
export declare const RESUME_PARAM: "hb_resume";
/**
 * The close code of a socket the client leaves but not its session (to
 * redial, or into the back/forward cache); a Go client sends 1001 there,
 * which a page may not. The server keeps the session for its resume
 * window. `close()` alone sends 1000: done.
 */
export declare const CLOSE_PAGE_AWAY: 4001;
/** The sessionStorage key the resume token is kept under. */
export declare const RESUME_KEY: "heartbeat.resume";

export type State = "connecting" | "alive" | "suspect" | "dead" | "reconnecting" | "closed";

export type Reason =
  | "connected" | "dial failed" | "connect timeout" | "silence" | "local stall" | "evidence"
  | "unanswered" | "peer closed" | "send failed" | "retry" | "backoff elapsed" | "gave up"
  | "user close" | "network online" | "page visible" | "page shown" | "page hidden" | "drain";

export declare const REASONS: ReadonlySet<Reason>;

/** Timing defaults in milliseconds; each copies a Go constant. */
export interface Defaults {
  interval: number; probe: number; probeGrowth: number; intervalGrowth: number; probes: number;
  gain: number; beta: number; phi: number; minMargin: number; initialMargin: number;
  retransmit: number; headroom: number; memory: number; slack: number; warmup: number;
  maxToleranceFactor: number; minPingInterval: number; connectTimeout: number; stableAfter: number;
  stallThreshold: number; stallGrace: number; backoffBase: number; backoffCap: number;
  maxWindow: number; maxMessageSize: number;
}
export declare const DEFAULTS: Readonly<Defaults>;

export interface Options extends Partial<Defaults> {
  /** Subprotocols offered, in order of preference. Default [bin, json]. */
  protocols?: string[];
  /** false: send no resume token. */
  resume?: boolean;
  /** Query parameter name for the token. Default RESUME_PARAM. */
  resumeParam?: string;
  /** sessionStorage key for the token. Default RESUME_KEY. */
  resumeKey?: string;
  // Injection points, for tests and other runtimes.
  WebSocket?: typeof WebSocket;
  now?: () => number;
  wallNow?: () => number;
  setTimeout?: (f: () => void, ms: number) => unknown;
  clearTimeout?: (h: unknown) => void;
  random?: () => number;
  window?: EventTarget | null;
  document?: (EventTarget & { visibilityState: string }) | null;
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
}

export interface Change {
  from: State;
  to: State;
  reason: Reason;
  /** The client's clock (performance.now()) at the change. */
  at: number;
  /** The close code, when a socket close caused the change. */
  code?: number;
  closeReason?: string;
}

export type ErrorCode =
  | "ENOTCONNECTED" | "ERESERVED" | "EMALFORMED" | "ETOOBIG" | "EPROTOCOL"
  | "EPOLICY" | "ESERVER" | "ESEND" | "EDIAL";

export declare class HeartbeatError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly code: ErrorCode;
}

/** A heartbeat message, as package wire defines it. */
export interface Message {
  t: "ping" | "pong" | "drain" | "close";
  seq?: number;
  ts?: number;
  id?: string;
  rw?: number;
  /** The server's fleet timeout advice, ms: clamped to [0, 600000] and
   * truncated to 10 ms when decoded (binary: version 2). */
  ta?: number;
  reason?: string;
  to?: string;
  meta?: Record<string, string>;
}

export interface EventMap {
  change: Change;
  open: { protocol: string; connId: string };
  message: { data: string | ArrayBuffer };
  close: { code: number; reason: string; wasClean: boolean };
  error: HeartbeatError;
}

export declare class HeartbeatClient {
  constructor(url: string, options?: Options);
  readonly url: string;
  readonly state: State;
  /** The negotiated subprotocol of the current connection. */
  readonly protocol: string;
  /** The connection ID the server sent in its heartbeats. */
  readonly connId: string;
  /** The server's latest reconnect-window advice, ms (0: none). */
  readonly advice: number;
  /** The resume token sent as RESUME_PARAM, or null with resume: false. */
  readonly resumeToken: string | null;
  readonly stats: { dials: number; opens: number };
  /** The detector; detector.bound() is the most its dead timeout can grow to. */
  readonly detector: Adaptive;
  on<K extends keyof EventMap>(type: K, fn: (ev: EventMap[K]) => void): () => void;
  start(): this;
  close(reason?: string): void;
  /** Sends an application message; throws HeartbeatError (ENOTCONNECTED, ERESERVED). */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void;
  /** The detector's current timeouts, ms after the last evidence. */
  timeouts(): { suspect: number; dead: number };
}

export declare function connect(url: string, options?: Options): HeartbeatClient;
export declare function isHeartbeat(data: string | ArrayBufferLike | ArrayBufferView): boolean;
export declare function encodeJSON(m: Message): string;
export declare function decodeJSON(s: string): Required<Message>;
export declare function encodeBinary(m: Message): Uint8Array;
export declare function decodeBinary(b: ArrayBufferLike | ArrayBufferView): Required<Message>;

export declare class Adaptive {
  constructor(o: Defaults);
  start(now: number): void;
  observe(now: number, rtt: number): void;
  /** The server's fleet timeout advice, ms: under 1000 is none, over
   * 600000 clamped; it raises the tolerance, never past bound(). The client
   * calls it for every ping that carries advice. */
  advise(ms: number): void;
  timeouts(): { suspect: number; dead: number };
  bound(): number;
}
