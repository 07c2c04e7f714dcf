// src/detector.js: policy.Adaptive and the probe gaps of policy.AdaptiveInterval.
import { MAX_TIMEOUT_ADVICE_MS, MIN_ADVICE_MS } from "./constants.js";

// Adaptive is policy.Adaptive: a Jacobson/Karels estimate of the lateness
// of evidence and of round trips, and a decaying worst lateness. Times in
// milliseconds. suspect = interval + α; dead = interval + max(α + (probes−1)·
// probe + rto, tol).
export class Adaptive {
  constructor(o) {
    this.o = o;
    this.last = null;
    this.late = { mean: 0, dev: 0, n: 0 };
    this.rtt = { mean: 0, dev: 0, n: 0 };
    this.worst = 0;
    this.prior = 0;
    this.advice = 0; // the server's fleet advice, ms; 0 for none
  }
  // advise is policy.Adaptive.Advise: a dead-timeout advice under 1 s is
  // none, over 10 min is clamped; it only raises the tolerance, never past
  // maxToleranceFactor·interval.
  advise(ms) {
    this.advice = !(ms >= MIN_ADVICE_MS) ? 0 : Math.min(ms, MAX_TIMEOUT_ADVICE_MS);
  }
  start(now) {
    this.last = now;
  }
  static add(e, x, gain) {
    if (e.n === 0) {
      e.mean = x;
      e.dev = x / 2;
    } else {
      const err = x - e.mean;
      e.mean += gain * err;
      e.dev += gain * (Math.abs(err) - e.dev);
    }
    e.n++;
  }
  observe(now, rtt) {
    const o = this.o, maxM = o.interval, maxTol = o.maxToleranceFactor * o.interval;
    if (this.last !== null) {
      const gap = now - this.last;
      if (gap >= o.interval / 2) {
        const l = Math.max(gap - o.interval, 0);
        if (this.late.n === 0) this.prior = this.initial();
        Adaptive.add(this.late, Math.min(l, maxM), o.gain);
        this.worst = Math.max(Math.min(l, maxTol), this.worst * (1 - 1 / o.memory));
        this.prior *= 1 - 1 / o.warmup;
      }
    }
    this.last = now;
    if (rtt > 0) Adaptive.add(this.rtt, Math.min(rtt, maxM), o.gain);
  }
  initial() {
    const o = this.o;
    return Math.min(Math.max(o.initialMargin, o.minMargin), o.interval);
  }
  margins() {
    const o = this.o, minM = o.minMargin, maxM = o.interval, maxTol = o.maxToleranceFactor * o.interval;
    const w = Math.max(this.worst, this.prior);
    let tol = Math.min(o.headroom * w, w + o.slack, maxTol);
    if (this.advice > 0) tol = Math.min(Math.max(tol, this.advice - o.interval), maxTol);
    let r;
    if (this.rtt.n > 0) r = o.beta * this.rtt.mean + o.phi * this.rtt.dev;
    else if (this.late.n > 0) r = o.beta * this.late.mean + o.phi * this.late.dev;
    else return { alpha: this.initial(), rto: this.initial(), tol };
    const rto = Math.min(Math.max(r + o.retransmit, minM), maxM);
    let alpha = rto;
    if (this.late.n > 0) alpha = Math.min(Math.max(o.beta * this.late.mean + o.phi * this.late.dev, rto), maxM);
    return { alpha, rto, tol };
  }
  timeouts() {
    const o = this.o;
    const { alpha, rto, tol } = this.margins();
    return { suspect: o.interval + alpha, dead: o.interval + Math.max(alpha + (o.probes - 1) * o.probe + rto, tol) };
  }
  // bound is DetectionBound without the network's round trip: no learned
  // state can make the dead timeout longer.
  bound() {
    const o = this.o;
    return o.interval + Math.max(2 * o.interval + (o.probes - 1) * o.probe, o.maxToleranceFactor * o.interval);
  }
}

// nextPing is policy.AdaptiveInterval.NextPing with ProbeGrowth: probes
// while suspect every probe·growth^(k−1) (at most 4 growths), otherwise an
// idle gap that grows from probe back to interval after a suspicion.
export /* internal */ function probeGap(lo, growth, unanswered) {
  if (!(growth > 1) || unanswered <= 1) return lo;
  return lo * Math.pow(Math.min(growth, 4), Math.min(unanswered - 1, 4));
}
