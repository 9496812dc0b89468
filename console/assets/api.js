// The console's only way to the server: the /v1 API with the key the user
// signed in with, kept in sessionStorage and sent only in the
// Authorization header (never in a URL, a cookie or localStorage).

const KEY = "recguard.console.key";
const ROLE = "recguard.console.role";

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function getRole() {
  return getKey() ? sessionStorage.getItem(ROLE) || "" : "";
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ROLE);
}

// ApiError is an answer outside 2xx: status, and the problem's members
// (type, title, detail, field, weakens, ...) when it is one.
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
  get code() {
    const t = this.problem.type || "";
    return t.slice(t.lastIndexOf("/") + 1);
  }
}

// call sends one request. opts: {method, query, body (sent as JSON),
// contentType, headers, raw (answer the Response), key (instead of the
// signed-in one)}. It answers the JSON body (or the Response with raw),
// with the status in result.status... as {status, body, headers}.
export async function call(path, opts = {}) {
  const key = opts.key !== undefined ? opts.key : getKey();
  let url = path;
  if (opts.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    const s = q.toString();
    if (s) url += "?" + s;
  }
  const headers = { Accept: "application/json, application/problem+json", ...(opts.headers || {}) };
  if (key) headers.Authorization = "Bearer " + key;
  let body;
  if (opts.body !== undefined) {
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    headers["Content-Type"] = opts.contentType || "application/json";
  }
  let res;
  try {
    res = await fetch(url, {
      method: opts.method || "GET",
      headers,
      body,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
      redirect: "error",
    });
  } catch (e) {
    throw new ApiError(0, { title: "network", detail: String(e && e.message ? e.message : e) });
  }
  if (opts.raw && res.ok) return res;
  const ct = res.headers.get("Content-Type") || "";
  let data = null;
  if (ct.includes("json")) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  } else if (!opts.raw) {
    data = await res.text();
  }
  if (!res.ok) throw new ApiError(res.status, data && typeof data === "object" ? data : { detail: String(data || "") });
  return { status: res.status, body: data, headers: res.headers };
}

async function statusOf(path, opts) {
  try {
    const r = await call(path, opts);
    return r.status;
  } catch (e) {
    return e.status;
  }
}

// detectRole finds the key's role with one cheap request per role, none of
// which changes anything: GET /v1/admin/settings (admin); POST /v1/events
// with a body of the wrong media type (app: 415 before anything is read);
// GET of an enforcement report that does not exist (auditor: 404). Each is
// 403 for the other roles and 401 for a bad key. Answers "admin", "app",
// "auditor", or throws the ApiError of a rejected key.
export async function detectRole(key) {
  const probes = [
    ["admin", "/v1/admin/settings", {}],
    ["app", "/v1/events", { method: "POST", body: "{}", contentType: "text/plain" }],
    ["auditor", "/v1/audits/enforcement/0", {}],
  ];
  const results = await Promise.all(probes.map(([, p, o]) => statusOf(p, { ...o, key })));
  for (let i = 0; i < probes.length; i++) {
    const s = results[i];
    if (s !== 401 && s !== 403 && s !== 429 && s !== 0 && s < 500) return probes[i][0];
  }
  if (results.includes(401)) throw new ApiError(401, { title: "unauthenticated" });
  if (results.includes(429)) throw new ApiError(429, { title: "rate-limited" });
  throw new ApiError(results.find((s) => s >= 500) || 0, { title: "unavailable" });
}

export async function signIn(key) {
  key = key.trim();
  const role = await detectRole(key);
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(ROLE, role);
  return role;
}

// download fetches path with the key and hands the answer to the browser
// as a file named name (a blob URL, revoked at once after use).
export async function download(path, query, name, headers) {
  const res = await call(path, { query, raw: true, headers });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob;
}
