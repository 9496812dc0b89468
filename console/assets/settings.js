// Settings diff and loosening checks, computed in the browser before a
// change is sent (the server checks again: consent.DiffSettings and
// consent.Weakens). Pure functions: no DOM, no network.

const UNITS = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };

// parseDuration reads a Go duration string ("720h", "720h0m0s", "1h30m")
// into milliseconds; NaN when it is not one.
export function parseDuration(s) {
  if (typeof s !== "string") return NaN;
  s = s.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let i = 0;
  if (s === "") return NaN;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return NaN;
    total += parseFloat(m[1]) * UNITS[m[2]];
    i = re.lastIndex;
  }
  return total;
}

// formatDuration writes milliseconds as Go does for whole seconds
// ("720h0m0s").
export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "";
  if (ms === 0) return "0s";
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

// DEFAULT_RETENTION is three years (Art. 12), what a zero retention means.
export const DEFAULT_RETENTION = 3 * 365 * 24 * 3600000;
// MIN_REASK is the shortest re-ask cooldown the server takes.
export const MIN_REASK = 24 * 3600000;

function retention(doc) {
  const r = parseDuration(doc.retention || "0s");
  return r > 0 ? r : DEFAULT_RETENTION;
}

function setDiff(a = [], b = []) {
  const out = [];
  for (const x of b) if (!a.includes(x)) out.push({ sign: "+", v: x });
  for (const x of a) if (!b.includes(x)) out.push({ sign: "-", v: x });
  return out.sort((p, q) => (p.sign + p.v < q.sign + q.v ? -1 : 1));
}

function keys(a = {}, b = {}) {
  return [...new Set([...Object.keys(a || {}), ...Object.keys(b || {})])].sort();
}

// nsKind describes a taxonomy namespace: {rule: "ordinary"|"sensitive"|"prohibited", sensitive, category}.
export function nsKind(n) {
  if (!n) return null;
  if (n.prohibited) return { rule: "prohibited", category: n.category || "" };
  if (n.sensitive) return { rule: "sensitive", sensitive: n.sensitive, category: n.category || "" };
  return { rule: "ordinary", category: n.category || "" };
}

function sameNS(a, b) {
  return !!a.prohibited === !!b.prohibited && (a.sensitive || "") === (b.sensitive || "") && (a.category || "") === (b.category || "");
}

// diffSettings lists every difference from old to next as {key, args}
// (a message key of the console's strings and its arguments), in
// consent.DiffSettings' order. The version is not compared.
export function diffSettings(old, next) {
  const out = [];
  const add = (key, args) => out.push({ key, args });
  for (const d of setDiff(old.channels, next.channels)) add("diff.channels", { sign: d.sign, v: d.v });
  for (const ns of keys(old.taxonomy, next.taxonomy)) {
    const a = (old.taxonomy || {})[ns];
    const b = (next.taxonomy || {})[ns];
    if (!a) add("diff.nsAdded", { ns, to: nsKind(b) });
    else if (!b) add("diff.nsRemoved", { ns, from: nsKind(a) });
    else if (!sameNS(a, b)) add("diff.nsChanged", { ns, from: nsKind(a), to: nsKind(b) });
  }
  for (const p of keys(old.policies, next.policies)) {
    const a = (old.policies || {})[p];
    const b = (next.policies || {})[p];
    if (a === undefined) add("diff.policyAdded", { p, b });
    else if (b === undefined) add("diff.policyRemoved", { p, a });
    else if (a !== b) add("diff.policyChanged", { p, a, b });
  }
  for (const d of setDiff(old.keep_on_bump, next.keep_on_bump)) add("diff.keepOnBump", { sign: d.sign, v: d.v });
  const ra = parseDuration(old.reask_cooldown);
  const rb = parseDuration(next.reask_cooldown);
  if (ra !== rb) add("diff.reask", { a: formatDuration(ra), b: formatDuration(rb) });
  const ta = retention(old);
  const tb = retention(next);
  if (ta !== tb) add("diff.retention", { a: formatDuration(ta), b: formatDuration(tb) });
  if (!!old.allow_inference_while_off !== !!next.allow_inference_while_off)
    add("diff.inference", { a: !!old.allow_inference_while_off, b: !!next.allow_inference_while_off });
  if (!!old.suspended !== !!next.suspended) add("diff.suspended", { a: !!old.suspended, b: !!next.suspended });
  if ((old.suspend_reason || "") !== (next.suspend_reason || ""))
    add("diff.suspendReason", { a: old.suspend_reason || "", b: next.suspend_reason || "" });
  return out;
}

// narrows lists what the change from old to next loosens: anything that
// lets more personal processing happen with less consent, or keeps less
// evidence. It holds every line consent.Weakens gives (the server refuses
// those without allow_weakening=true) and more: a policy version lowered
// (consents voided by a bump count again), retention shortened, a channel
// removed (users can no longer refuse it). Each entry is {key, args,
// server} where server says consent.Weakens lists it too.
export function narrows(old, next) {
  const out = [];
  const add = (key, args, server) => out.push({ key, args, server });
  const ot = old.taxonomy || {};
  const nt = next.taxonomy || {};
  for (const ns of Object.keys(ot).sort()) {
    const a = ot[ns];
    const b = nt[ns];
    if (a.sensitive && (!b || b.sensitive !== a.sensitive)) add("narrow.sensitive", { ns, cat: a.sensitive }, true);
    else if (a.prohibited && (!b || !b.prohibited)) add("narrow.prohibited", { ns }, true);
  }
  const op = old.policies || {};
  const np = next.policies || {};
  for (const p of Object.keys(op).sort()) {
    if (np[p] === undefined) add("narrow.policyRemoved", { p, a: op[p] }, true);
    else if (np[p] < op[p]) add("narrow.policyLowered", { p, a: op[p], b: np[p] }, false);
  }
  for (const p of next.keep_on_bump || []) {
    if (!(old.keep_on_bump || []).includes(p)) add("narrow.keepOnBump", { p }, true);
  }
  const ra = parseDuration(old.reask_cooldown);
  const rb = parseDuration(next.reask_cooldown);
  if (rb < ra) add("narrow.reask", { a: formatDuration(ra), b: formatDuration(rb) }, true);
  if (next.allow_inference_while_off && !old.allow_inference_while_off) add("narrow.inference", {}, true);
  if (retention(next) < retention(old))
    add("narrow.retention", { a: formatDuration(retention(old)), b: formatDuration(retention(next)) }, false);
  for (const c of old.channels || []) {
    if (!(next.channels || []).includes(c)) add("narrow.channel", { c }, false);
  }
  return out;
}
