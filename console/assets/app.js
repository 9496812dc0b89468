// recguard admin console: a single page over the /v1 API. Plain ES
// modules, no framework, no build step. Every visible string comes from
// i18n.json (zh-CN and en).

import * as api from "./api.js";
import { h, s, replace, field, setError, uid } from "./dom.js";
import { diffSettings, narrows, parseDuration, formatDuration, MIN_REASK, DEFAULT_RETENTION } from "./settings.js";

// ---- strings ----

const LANG_KEY = "recguard.console.lang";
export const LANGS = ["zh-CN", "en"];
let STR = { en: {}, "zh-CN": {} };
let lang = "en";

function pickLang() {
  const saved = sessionStorage.getItem(LANG_KEY);
  if (LANGS.includes(saved)) return saved;
  const nav = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  return nav.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

// t is the string key in the current language with {name} replaced by
// args.name.
export function t(key, args) {
  let str = STR[lang][key];
  if (str === undefined) str = STR.en[key];
  if (str === undefined) return key;
  if (args) str = str.replace(/\{(\w+)\}/g, (m, n) => (args[n] !== undefined ? String(args[n]) : m));
  return str;
}

function tOr(key, fallback, args) {
  return STR.en[key] !== undefined ? t(key, args) : fallback;
}

const nf = () => new Intl.NumberFormat(lang);
const fmtNum = (n) => nf().format(n);
function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" }).format(d);
}

// ---- status and errors ----

let statusEl;
let alertEl;

function announce(msg, kind = "ok") {
  replace(statusEl, msg ? h("span", { class: "toast toast-" + kind }, msg) : null);
}

function problemText(e) {
  if (!(e instanceof api.ApiError)) return String(e && e.message ? e.message : e);
  if (e.status === 0) return t("err.network");
  const code = e.code;
  const title = code ? tOr("problem." + code, e.problem.title || code) : t("err.http", { status: e.status });
  const detail = e.problem.detail && e.problem.detail !== e.problem.title ? e.problem.detail : "";
  return detail ? `${title} (${e.status}): ${detail}` : `${title} (${e.status})`;
}

function showError(e, where) {
  const msg = problemText(e);
  if (where) {
    replace(where, h("p", { class: "error", role: "alert" }, msg));
  } else {
    replace(alertEl, h("p", { class: "error" }, msg));
  }
  if (e instanceof api.ApiError && e.status === 401) {
    api.signOut();
    route();
  }
}

function clearAlert() {
  alertEl.replaceChildren();
}

// confirmDialog asks in a modal dialog; resolves true when confirmed. The
// Cancel button has the focus first.
function confirmDialog({ title, body, ok, danger }) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const cancel = h("button", { type: "button", class: "btn" }, t("common.cancel"));
    const okBtn = h("button", { type: "button", class: "btn " + (danger ? "btn-danger" : "btn-primary"), id: "dialog-ok" }, ok);
    const dlg = h(
      "dialog",
      { class: "dialog", "aria-labelledby": titleId, id: "confirm-dialog" },
      h("h2", { id: titleId }, title),
      h("div", { class: "dialog-body" }, body),
      h("div", { class: "actions" }, cancel, okBtn),
    );
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    cancel.addEventListener("click", () => done(false));
    okBtn.addEventListener("click", () => done(true));
    dlg.addEventListener("cancel", (ev) => {
      ev.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// ---- layout and routing ----

const PAGES = {
  admin: ["settings", "suspension", "audience", "rights", "history", "api"],
  app: ["users", "api"],
  auditor: ["audits", "api"],
};

const RENDER = {};
let pageState = {};
let current = "";

function shell() {
  const role = api.getRole();
  const langSel = h(
    "select",
    { id: "lang", onchange: (ev) => setLang(ev.target.value) },
    LANGS.map((l) => h("option", { value: l, selected: l === lang }, l === "zh-CN" ? "简体中文" : "English")),
  );
  const header = h(
    "header",
    { class: "top" },
    h("a", { class: "skip", href: "#main", onclick: skip }, t("nav.skip")),
    h("h1", null, t("app.title")),
    h(
      "div",
      { class: "top-tools" },
      role ? h("span", { class: "role", id: "role" }, t("role.label"), " ", h("strong", null, t("role." + role))) : null,
      h("label", { for: "lang", class: "lang-label" }, t("lang.label")),
      langSel,
      role ? h("button", { type: "button", class: "btn", id: "signout", onclick: onSignOut }, t("nav.signout")) : null,
    ),
  );
  const nav = role
    ? h(
        "nav",
        { "aria-label": t("nav.label"), class: "side" },
        h(
          "ul",
          null,
          PAGES[role].map((p) =>
            h("li", null, h("a", { href: "#/" + p, id: "nav-" + p, "aria-current": p === current ? "page" : false }, t("page." + p))),
          ),
        ),
      )
    : null;
  const main = h("main", { id: "main", tabindex: "-1" });
  statusEl = h("div", { id: "status", class: "status", role: "status", "aria-live": "polite" });
  alertEl = h("div", { id: "alert", class: "alert", role: "alert", "aria-live": "assertive" });
  replace(document.body, header, h("div", { class: role ? "layout" : "layout layout-signin" }, nav, h("div", { class: "content" }, alertEl, main)), statusEl);
  return main;
}

function skip(ev) {
  ev.preventDefault();
  document.getElementById("main").focus();
}

function setLang(l) {
  if (!LANGS.includes(l)) return;
  lang = l;
  sessionStorage.setItem(LANG_KEY, l);
  document.documentElement.lang = l;
  document.title = t("app.title");
  route(true);
  const sel = document.getElementById("lang");
  if (sel) sel.focus();
}

function onSignOut() {
  api.signOut();
  pageState = {};
  location.hash = "";
  route();
}

async function route(keepFocus) {
  const role = api.getRole();
  if (!role) {
    current = "";
    const main = shell();
    renderSignIn(main);
    return;
  }
  let page = (location.hash || "").replace(/^#\/?/, "");
  if (!PAGES[role].includes(page)) page = PAGES[role][0];
  const changed = page !== current;
  current = page;
  document.title = `${t("page." + page)} · ${t("app.title")}`;
  const main = shell();
  main.dataset.page = page;
  try {
    await RENDER[page](main, (pageState[page] ||= {}), changed);
  } catch (e) {
    showError(e);
  }
  if (changed && !keepFocus) {
    const h2 = main.querySelector("h2");
    if (h2) {
      h2.tabIndex = -1;
      h2.focus();
    }
  }
}

function pageHead(page, intro) {
  return [h("h2", { id: "page-title" }, t("page." + page)), intro ? h("p", { class: "intro" }, intro) : null];
}

function button(label, onclick, cls = "btn", attrs = {}) {
  return h("button", { type: "button", class: cls, onclick, ...attrs }, label);
}

// busy runs f with the button disabled and marked busy.
async function busy(btn, f) {
  btn.disabled = true;
  btn.setAttribute("aria-busy", "true");
  try {
    return await f();
  } finally {
    btn.disabled = false;
    btn.removeAttribute("aria-busy");
  }
}

// ---- sign in ----

function renderSignIn(main) {
  const input = h("input", { id: "key", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-required": "true" });
  const err = h("div", { id: "signin-error", "aria-live": "assertive" });
  const btn = h("button", { type: "submit", class: "btn btn-primary", id: "signin" }, t("signin.submit"));
  const form = h(
    "form",
    { class: "card signin", novalidate: true, "aria-labelledby": "page-title" },
    h("h2", { id: "page-title" }, t("signin.title")),
    h("p", null, t("signin.intro")),
    field(t("signin.key"), input, t("signin.keyHint")),
    h("div", { class: "actions" }, btn),
    err,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setError(input, "");
    err.replaceChildren();
    if (!input.value.trim()) {
      setError(input, t("signin.empty"));
      input.focus();
      return;
    }
    await busy(btn, async () => {
      try {
        const role = await api.signIn(input.value);
        input.value = "";
        location.hash = "#/" + PAGES[role][0];
        current = "";
        await route();
      } catch (e) {
        setError(input, e.status === 401 ? t("signin.bad") : problemText(e));
        input.focus();
      }
    });
  });
  replace(main, form);
  input.focus();
}

// ---- settings (admin) ----

const CATEGORIES = ["biometrics", "religion", "specific_identity", "medical_health", "financial_account", "whereabouts"];

function clone(x) {
  return JSON.parse(JSON.stringify(x));
}

function catName(c) {
  return tOr("cat." + c, c);
}

function describeNS(k) {
  if (!k) return "";
  let d = k.rule === "sensitive" ? t("ns.sensitive", { cat: catName(k.sensitive) }) : t("ns." + k.rule);
  if (k.category) d += t("ns.category", { category: k.category });
  return d;
}

// diffText renders one diffSettings or narrows entry.
function diffText(d) {
  const a = { ...d.args };
  for (const k of ["from", "to"]) if (a[k] && typeof a[k] === "object") a[k] = describeNS(a[k]);
  for (const k of ["a", "b"]) if (typeof a[k] === "boolean") a[k] = a[k] ? t("common.on") : t("common.off");
  if (a.cat) a.cat = catName(a.cat);
  return t(d.key, a);
}

function durationHint(str) {
  const ms = parseDuration(str);
  if (!Number.isFinite(ms)) return "";
  return t("settings.days", { n: fmtNum(Math.round((ms / 86400000) * 10) / 10) });
}

RENDER.settings = async (main, st, entering) => {
  if (!st.doc || entering) {
    // Read afresh on every visit: the kill switch and other admins change
    // the version; edits made against an older one are dropped.
    const fresh = (await api.call("/v1/admin/settings")).body;
    if (st.doc && fresh.version !== st.doc.version && st.draft) {
      st.draft = null;
      st.preview = null;
      announce(t("settings.changedMeanwhile", { v: fresh.version }), "warn");
    }
    st.doc = fresh;
  }
  if (!st.draft) st.draft = clone(st.doc);
  const doc = st.doc;
  const d = st.draft;
  const form = h("form", { class: "settings", novalidate: true, id: "settings-form" });
  form.addEventListener("submit", (ev) => ev.preventDefault());

  const channels = h("input", { id: "s-channels", type: "text", value: (d.channels || []).join(", "), spellcheck: "false" });
  channels.addEventListener("input", () => {
    d.channels = channels.value.split(/[\s,，]+/).filter(Boolean);
    st.preview = null;
  });
  const reask = h("input", { id: "s-reask", type: "text", value: d.reask_cooldown, spellcheck: "false", inputmode: "text" });
  const reaskDays = h("span", { class: "hint-inline", id: "s-reask-days" }, durationHint(d.reask_cooldown));
  reask.addEventListener("input", () => {
    d.reask_cooldown = reask.value.trim();
    replace(reaskDays, durationHint(d.reask_cooldown));
    st.preview = null;
  });
  const ret = h("input", { id: "s-retention", type: "text", value: d.retention, spellcheck: "false" });
  const retDays = h("span", { class: "hint-inline" }, durationHint(d.retention));
  ret.addEventListener("input", () => {
    d.retention = ret.value.trim();
    replace(retDays, durationHint(d.retention));
    st.preview = null;
  });
  const infer = h("input", { id: "s-inference", type: "checkbox", checked: !!d.allow_inference_while_off });
  infer.addEventListener("change", () => {
    d.allow_inference_while_off = infer.checked;
    st.preview = null;
  });

  // policies
  const polRows = Object.keys(d.policies || {})
    .sort()
    .map((p) => {
      const v = h("input", { type: "number", min: "0", step: "1", id: "s-pol-" + p, value: String(d.policies[p]), class: "num" });
      v.addEventListener("input", () => {
        d.policies[p] = v.value === "" ? NaN : Number(v.value);
        st.preview = null;
      });
      const keep = h("input", { type: "checkbox", id: "s-keep-" + p, checked: (d.keep_on_bump || []).includes(p) });
      keep.addEventListener("change", () => {
        const k = new Set(d.keep_on_bump || []);
        keep.checked ? k.add(p) : k.delete(p);
        d.keep_on_bump = [...k].sort();
        st.preview = null;
      });
      return h(
        "tr",
        null,
        h("th", { scope: "row" }, h("code", null, p), " ", h("span", { class: "muted" }, tOr("purpose." + p, ""))),
        h("td", null, h("label", { class: "sr-only", for: v.id }, t("settings.policyVersionOf", { p })), v),
        h("td", null, keep, h("label", { class: "sr-only", for: keep.id }, t("settings.keepOf", { p }))),
        h(
          "td",
          null,
          button(t("common.remove"), () => {
            delete d.policies[p];
            d.keep_on_bump = (d.keep_on_bump || []).filter((x) => x !== p);
            st.preview = null;
            rerender("s-new-purpose");
          }, "btn btn-small", { "aria-label": t("settings.removePolicy", { p }) }),
        ),
      );
    });
  const newPurpose = h("input", { id: "s-new-purpose", type: "text", spellcheck: "false", class: "short" });
  const addPurpose = button(t("settings.addPolicy"), () => {
    const p = newPurpose.value.trim();
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(p)) {
      setError(newPurpose, t("settings.badPurpose"));
      newPurpose.focus();
      return;
    }
    d.policies = { ...(d.policies || {}), [p]: d.policies && d.policies[p] !== undefined ? d.policies[p] : 1 };
    st.preview = null;
    rerender("s-pol-" + p);
  }, "btn btn-small");

  // taxonomy
  const taxRows = Object.keys(d.taxonomy || {})
    .sort()
    .map((ns) => {
      const n = d.taxonomy[ns];
      const sel = h(
        "select",
        { id: "s-ns-" + ns },
        h("option", { value: "ordinary", selected: !n.prohibited && !n.sensitive }, t("ns.ordinary")),
        h("option", { value: "prohibited", selected: !!n.prohibited }, t("ns.prohibited")),
        CATEGORIES.map((c) => h("option", { value: "sensitive:" + c, selected: !n.prohibited && n.sensitive === c }, t("ns.sensitive", { cat: catName(c) }))),
      );
      sel.addEventListener("change", () => {
        const cur = { category: n.category || "" };
        if (sel.value === "prohibited") cur.prohibited = true;
        else if (sel.value.startsWith("sensitive:")) cur.sensitive = sel.value.slice(10);
        if (!cur.category) delete cur.category;
        d.taxonomy[ns] = cur;
        st.preview = null;
      });
      const cat = h("input", { type: "text", id: "s-nscat-" + ns, value: n.category || "", class: "short", spellcheck: "false" });
      cat.addEventListener("input", () => {
        if (cat.value.trim()) d.taxonomy[ns].category = cat.value.trim();
        else delete d.taxonomy[ns].category;
        st.preview = null;
      });
      return h(
        "tr",
        null,
        h("th", { scope: "row" }, h("code", null, ns)),
        h("td", null, h("label", { class: "sr-only", for: sel.id }, t("settings.ruleOf", { ns })), sel),
        h("td", null, h("label", { class: "sr-only", for: cat.id }, t("settings.categoryOf", { ns })), cat),
        h(
          "td",
          null,
          button(t("common.remove"), () => {
            delete d.taxonomy[ns];
            st.preview = null;
            rerender("s-new-ns");
          }, "btn btn-small", { "aria-label": t("settings.removeNS", { ns }) }),
        ),
      );
    });
  const newNS = h("input", { id: "s-new-ns", type: "text", spellcheck: "false", class: "short" });
  const addNS = button(t("settings.addNS"), () => {
    const ns = newNS.value.trim();
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(ns) || ["consent", "refused", "sensitive"].includes(ns)) {
      setError(newNS, t("settings.badNS"));
      newNS.focus();
      return;
    }
    d.taxonomy = { ...(d.taxonomy || {}) };
    if (!d.taxonomy[ns]) d.taxonomy[ns] = {};
    st.preview = null;
    rerender("s-ns-" + ns);
  }, "btn btn-small");

  const previewBox = h("section", { id: "s-preview", class: "preview", "aria-live": "polite", "aria-labelledby": "s-preview-title" });
  const previewBtn = button(t("settings.preview"), () => preview(), "btn btn-primary", { id: "s-preview-btn" });
  const resetBtn = button(t("settings.reset"), () => {
    st.draft = null;
    st.preview = null;
    rerender("s-channels");
  }, "btn", { id: "s-reset" });
  const reloadBtn = button(t("settings.reload"), async () => {
    st.doc = null;
    st.draft = null;
    st.preview = null;
    await rerender("s-channels");
    announce(t("settings.reloaded"));
  }, "btn", { id: "s-reload" });

  replace(
    form,
    h(
      "fieldset",
      null,
      h("legend", null, t("settings.channels")),
      field(t("settings.channelsLabel"), channels, t("settings.channelsHint")),
    ),
    h(
      "fieldset",
      null,
      h("legend", null, t("settings.consentRules")),
      field(t("settings.reask"), reask, t("settings.reaskHint"), reaskDays),
      field(t("settings.retention"), ret, t("settings.retentionHint"), retDays),
      field(t("settings.inference"), infer, t("settings.inferenceHint")),
    ),
    h(
      "fieldset",
      null,
      h("legend", null, t("settings.policies")),
      h("p", { class: "hint" }, t("settings.policiesHint")),
      h(
        "table",
        { class: "grid" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, t("settings.purpose")), h("th", { scope: "col" }, t("settings.version")), h("th", { scope: "col" }, t("settings.keepOnBump")), h("th", { scope: "col" }, h("span", { class: "sr-only" }, t("common.actions"))))),
        h("tbody", null, polRows),
      ),
      h("div", { class: "inline-add" }, field(t("settings.newPurpose"), newPurpose), addPurpose),
    ),
    h(
      "fieldset",
      null,
      h("legend", null, t("settings.taxonomy")),
      h("p", { class: "hint" }, t("settings.taxonomyHint")),
      h(
        "table",
        { class: "grid" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, t("settings.namespace")), h("th", { scope: "col" }, t("settings.rule")), h("th", { scope: "col" }, t("settings.category")), h("th", { scope: "col" }, h("span", { class: "sr-only" }, t("common.actions"))))),
        h("tbody", null, taxRows),
      ),
      h("div", { class: "inline-add" }, field(t("settings.newNS"), newNS), addNS),
    ),
    h("div", { class: "actions sticky" }, previewBtn, resetBtn, reloadBtn),
  );

  replace(
    main,
    pageHead("settings", t("settings.intro")),
    h("p", { class: "meta", id: "s-version" }, t("settings.versionIs", { v: doc.version }), doc.suspended ? h("span", { class: "badge badge-danger" }, t("kill.isOn")) : null),
    form,
    previewBox,
  );
  if (st.preview) preview();
  if (st.result) showResult(st.result);

  async function rerender(focusId) {
    await RENDER.settings(main, st);
    const el = focusId && document.getElementById(focusId);
    if (el) el.focus();
  }

  function validate(next) {
    let ok = true;
    const rk = parseDuration(next.reask_cooldown);
    if (!Number.isFinite(rk)) {
      setError(reask, t("settings.badDuration"));
      ok = false;
    } else if (rk < MIN_REASK) {
      setError(reask, t("settings.reaskTooShort"));
      ok = false;
    } else setError(reask, "");
    const rt = parseDuration(next.retention || "0s");
    if (!Number.isFinite(rt)) {
      setError(ret, t("settings.badDuration"));
      ok = false;
    } else if (rt !== 0 && rt < DEFAULT_RETENTION) {
      setError(ret, t("settings.retentionTooShort"));
      ok = false;
    } else setError(ret, "");
    const bad = (next.channels || []).find((c) => !/^[a-z][a-z0-9_]{0,31}$/.test(c));
    const dup = (next.channels || []).find((c, i, a) => a.indexOf(c) !== i);
    if (bad || dup) {
      setError(channels, bad ? t("settings.badChannel", { c: bad }) : t("settings.dupChannel", { c: dup }));
      ok = false;
    } else setError(channels, "");
    for (const [p, v] of Object.entries(next.policies || {})) {
      const el = document.getElementById("s-pol-" + p);
      if (!Number.isInteger(v) || v < 0) {
        if (el) setError(el, t("settings.badVersion"));
        ok = false;
      }
    }
    return ok;
  }

  function nextDoc() {
    const next = clone(d);
    next.version = doc.version;
    next.channels = [...(next.channels || [])];
    next.keep_on_bump = (next.keep_on_bump || []).filter((p) => next.policies && next.policies[p] !== undefined);
    // the kill switch is its own page: a settings change keeps it as it is
    next.suspended = doc.suspended;
    next.suspend_reason = doc.suspend_reason;
    return next;
  }

  function preview() {
    const next = nextDoc();
    st.preview = true;
    if (!validate(next)) {
      replace(previewBox, h("p", { class: "error", role: "alert" }, t("settings.fixErrors")));
      return;
    }
    const diff = diffSettings(doc, next);
    const loosens = narrows(doc, next);
    const saveBtn = button(t(loosens.length ? "settings.saveLoosening" : "settings.save"), () => save(next, loosens), loosens.length ? "btn btn-danger" : "btn btn-primary", { id: "s-save", disabled: diff.length === 0 });
    replace(
      previewBox,
      h("h3", { id: "s-preview-title" }, t("settings.previewTitle", { v: doc.version })),
      diff.length === 0
        ? h("p", { id: "s-nochange" }, t("settings.noChange"))
        : h("ul", { class: "diff", id: "s-diff" }, diff.map((x) => h("li", { class: "diff-" + (x.args.sign === "-" ? "del" : "chg") }, h("code", null, x.key.replace("diff.", "")), " ", diffText(x)))),
      loosens.length
        ? h(
            "div",
            { class: "warning", id: "s-narrows" },
            h("h4", null, t("settings.loosensTitle")),
            h("ul", null, loosens.map((x) => h("li", null, diffText(x)))),
            h("p", null, t("settings.loosensHint")),
          )
        : null,
      h("div", { class: "actions" }, saveBtn),
    );
  }

  async function save(next, loosens, serverWeakens) {
    let allow = false;
    if (loosens.length || serverWeakens) {
      const lines = serverWeakens ? serverWeakens.map((l) => h("li", null, h("code", null, l))) : loosens.map((x) => h("li", null, diffText(x)));
      const ok = await confirmDialog({
        title: t("settings.confirmTitle"),
        body: [h("p", null, t("settings.confirmBody")), h("ul", { id: "confirm-list" }, lines), h("p", null, t("settings.confirmAsk"))],
        ok: t("settings.confirmOk"),
        danger: true,
      });
      if (!ok) {
        announce(t("settings.cancelled"), "warn");
        document.getElementById("s-save")?.focus();
        return;
      }
      allow = true;
    }
    const btn = document.getElementById("s-save");
    try {
      const r = await busy(btn, () => api.call("/v1/admin/settings", { method: "PUT", query: allow ? { allow_weakening: "true" } : null, body: next }));
      st.doc = r.body.settings;
      st.draft = null;
      st.preview = null;
      st.result = { version: st.doc.version, diff: r.body.receipt.diff || [], receipt: r.body.receipt.id, pending: r.status === 202 };
      await rerender("s-result");
      announce(t("settings.saved", { v: st.doc.version }));
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 409 && e.code === "weakens-consent-rules" && !allow) {
        return save(next, loosens, e.problem.weakens || []);
      }
      if (e instanceof api.ApiError && e.status === 409 && e.code === "conflict") {
        replace(previewBox, h("div", { class: "error", role: "alert" }, h("p", null, t("settings.stale")), reloadBtn));
        return;
      }
      if (e instanceof api.ApiError && e.status === 422 && e.problem.field) {
        const map = { reask_cooldown: reask, retention: ret, channels, allow_inference_while_off: infer };
        const el = map[e.problem.field];
        if (el) {
          setError(el, problemText(e));
          el.focus();
        }
      }
      showError(e, previewBox);
    }
  }

  function showResult(r) {
    st.result = null;
    const box = h(
      "section",
      { class: "card ok", id: "s-result", tabindex: "-1", "aria-labelledby": "s-result-title" },
      h("h3", { id: "s-result-title" }, t(r.pending ? "settings.savedPending" : "settings.saved", { v: r.version })),
      h("p", null, t("settings.receipt"), " ", h("code", null, r.receipt)),
      h("ul", { class: "diff" }, r.diff.map((l) => h("li", null, h("code", null, l)))),
    );
    main.insertBefore(box, form);
  }
};

// ---- kill switch (admin) ----

RENDER.suspension = async (main, st) => {
  const doc = (await api.call("/v1/admin/settings")).body;
  const on = !!doc.suspended;
  const word = t(on ? "kill.wordOff" : "kill.wordOn");
  const reason = h("textarea", { id: "k-reason", rows: "2", maxlength: "256", required: !on, "aria-required": on ? "false" : "true" });
  const typed = h("input", { id: "k-confirm", type: "text", autocomplete: "off", spellcheck: "false", required: true, "aria-required": "true" });
  const out = h("div", { id: "k-result", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: on ? "btn btn-primary" : "btn btn-danger", id: "k-submit" }, t(on ? "kill.lift" : "kill.flip"));
  const form = h(
    "form",
    { class: "card", novalidate: true, id: "k-form" },
    h("h3", null, t(on ? "kill.liftTitle" : "kill.flipTitle")),
    h("p", null, t(on ? "kill.liftExplain" : "kill.flipExplain")),
    field(t(on ? "kill.reasonLift" : "kill.reason"), reason, t(on ? "kill.reasonLiftHint" : "kill.reasonHint")),
    field(t("kill.typeWord", { word }), typed, t("kill.typeHint", { word })),
    h("div", { class: "actions" }, submit),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let ok = true;
    if (!on && !reason.value.trim()) {
      setError(reason, t("kill.reasonRequired"));
      ok = false;
    } else setError(reason, "");
    if (typed.value.trim() !== word) {
      setError(typed, t("kill.wordMismatch", { word }));
      ok = false;
    } else setError(typed, "");
    if (!ok) {
      (reason.getAttribute("aria-invalid") ? reason : typed).focus();
      return;
    }
    try {
      const r = await busy(submit, () => api.call("/v1/admin/suspension", { method: "PUT", body: { suspended: !on, reason: reason.value.trim() } }));
      st.last = { on: !on, pending: r.status === 202, version: (r.body.settings || {}).version };
      await RENDER.suspension(main, st);
      document.getElementById("k-state")?.focus();
      announce(t(!on ? "kill.flipped" : "kill.lifted"), !on ? "warn" : "ok");
    } catch (e) {
      showError(e, out);
    }
  });
  replace(
    main,
    pageHead("suspension", t("kill.intro")),
    h(
      "div",
      { class: "card state " + (on ? "state-on" : "state-off"), id: "k-state", tabindex: "-1", "data-suspended": String(on) },
      h("p", { class: "big" }, t(on ? "kill.stateOn" : "kill.stateOff")),
      on && doc.suspend_reason ? h("p", null, t("kill.reasonIs"), " ", h("q", null, doc.suspend_reason)) : null,
      h("p", { class: "meta" }, t("settings.versionIs", { v: doc.version })),
      st.last && st.last.pending ? h("p", { class: "warning" }, t("kill.pending")) : null,
    ),
    form,
  );
};

// ---- audience builder (admin) ----

const EXAMPLES = ["interest:ski & region:sh", "(interest:ski | interest:snowboard) & !refused:sms", "* & !erased"];

function byteToChar(str, byteOffset) {
  const enc = new TextEncoder();
  let bytes = 0;
  let i = 0;
  for (const ch of str) {
    if (bytes >= byteOffset) return i;
    bytes += enc.encode(ch).length;
    i += ch.length;
  }
  return str.length;
}

RENDER.audience = async (main, st) => {
  if (!st.channels) {
    const doc = (await api.call("/v1/admin/settings")).body;
    st.channels = doc.channels || [];
    st.suspended = !!doc.suspended;
  }
  st.segment ??= "interest:ski";
  st.channel ??= st.channels.includes("push") ? "push" : st.channels[0] || "";
  st.targeted ??= true;
  let seq = 0;
  let timer = 0;

  const seg = h("textarea", { id: "a-segment", rows: "2", spellcheck: "false", value: st.segment, "aria-describedby": "" });
  const chan = h("select", { id: "a-channel" }, st.channels.map((c) => h("option", { value: c, selected: c === st.channel }, c)));
  const targeted = h("input", { id: "a-targeted", type: "checkbox", checked: st.targeted });
  const segErr = h("div", { id: "a-segment-parse", class: "parse-error", "aria-live": "assertive" });
  const count = h("output", { id: "a-count", for: "a-segment a-channel a-targeted", "aria-live": "polite", class: "count" });
  const canon = h("p", { id: "a-canonical", class: "meta" });
  const sample = h("section", { id: "a-sample", "aria-labelledby": "a-sample-title" });
  const sampleBtn = button(t("aud.sample"), () => loadSample(""), "btn", { id: "a-sample-btn" });

  const examples = h(
    "div",
    { class: "examples" },
    h("span", null, t("aud.examples")),
    EXAMPLES.map((x) =>
      button(x, () => {
        seg.value = x;
        changed(true);
        seg.focus();
      }, "chip"),
    ),
  );

  function params(limit, cursor) {
    return { segment: seg.value, channel: chan.value, targeted: String(targeted.checked), limit: String(limit), cursor };
  }

  function showParseError(e) {
    const p = e.problem || {};
    const m = /at (\d+):/.exec(p.detail || "");
    const field = p.field || "";
    const target = field === "channel" ? chan : seg;
    setError(target, problemText(e));
    if (field === "segment" && m) {
      const pos = byteToChar(seg.value, Number(m[1]));
      const before = seg.value.slice(0, pos);
      const at = seg.value.slice(pos, pos + 1);
      const after = seg.value.slice(pos + 1);
      replace(
        segErr,
        h("p", { class: "hint" }, t("aud.errorAt", { pos: pos + 1 })),
        h("pre", { class: "caret", "aria-hidden": "true" }, before, h("mark", null, at || "␣"), after),
      );
    } else segErr.replaceChildren();
  }

  async function countNow() {
    const my = ++seq;
    st.segment = seg.value;
    st.channel = chan.value;
    st.targeted = targeted.checked;
    if (!seg.value.trim()) {
      replace(count, t("aud.empty"));
      setError(seg, "");
      segErr.replaceChildren();
      return;
    }
    count.setAttribute("aria-busy", "true");
    try {
      const r = await api.call("/v1/admin/audience", { query: params(0) });
      if (my !== seq) return;
      setError(seg, "");
      setError(chan, "");
      segErr.replaceChildren();
      count.dataset.count = String(r.body.count);
      replace(count, t("aud.count", { n: fmtNum(r.body.count) }));
      replace(canon, t("aud.canonical"), " ", h("code", null, r.body.segment), " · ", t(r.body.targeted ? "aud.isTargeted" : "aud.notTargeted"));
    } catch (e) {
      if (my !== seq) return;
      delete count.dataset.count;
      replace(count, t("aud.noCount"));
      canon.replaceChildren();
      if (e instanceof api.ApiError && e.status === 422) showParseError(e);
      else showError(e, segErr);
    } finally {
      if (my === seq) count.removeAttribute("aria-busy");
    }
  }

  function changed(now) {
    clearTimeout(timer);
    sample.replaceChildren();
    timer = setTimeout(countNow, now ? 0 : 350);
  }

  async function loadSample(cursor) {
    try {
      const r = await busy(sampleBtn, () => api.call("/v1/admin/audience", { query: params(20, cursor) }));
      const more = r.body.next
        ? button(t("aud.next"), () => loadSample(r.body.next), "btn btn-small", { id: "a-next" })
        : h("p", { class: "meta" }, t("aud.last"));
      replace(
        sample,
        h("h3", { id: "a-sample-title", tabindex: "-1" }, t("aud.sampleTitle", { n: r.body.users.length, total: fmtNum(r.body.count) })),
        h("p", { class: "hint" }, t("aud.provision")),
        r.body.users.length ? h("ol", { class: "ids", id: "a-ids" }, r.body.users.map((u) => h("li", null, h("code", null, u)))) : h("p", null, t("aud.none")),
        more,
      );
      document.getElementById("a-sample-title").focus();
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 422) showParseError(e);
      else showError(e, sample);
    }
  }

  seg.addEventListener("input", () => changed(false));
  chan.addEventListener("change", () => changed(true));
  targeted.addEventListener("change", () => changed(true));

  replace(
    main,
    pageHead("audience", t("aud.intro")),
    st.suspended ? h("p", { class: "warning" }, t("aud.suspended")) : null,
    h(
      "form",
      { class: "card", novalidate: true, id: "a-form", onsubmit: (ev) => { ev.preventDefault(); changed(true); } },
      field(t("aud.segment"), seg, t("aud.segmentHint")),
      segErr,
      examples,
      h("div", { class: "row" }, field(t("aud.channel"), chan), field(t("aud.targeted"), targeted, t("aud.targetedHint"))),
      h("div", { class: "result-line" }, count, canon),
      h("div", { class: "actions" }, sampleBtn),
    ),
    sample,
    h(
      "details",
      { class: "help" },
      h("summary", null, t("aud.syntax")),
      h("pre", null, 'expr    = or .\nor      = and { "|" and } .\nand     = unary { "&" unary } .\nunary   = { "!" } primary .\nprimary = "(" or ")" | "*" | atom .\natom    = namespace ":" value | consent:personalization_off | consent:guardian\n        | refused:<channel> | sensitive:<category> | minor | erased .'),
      h("p", null, t("aud.syntaxHint")),
    ),
  );
  countNow();
};

// ---- rights report (admin) ----

function kindName(k) {
  return tOr("kind." + k, k);
}

function rightsChart(rep) {
  const rows = rep.kinds;
  const max = Math.max(1, ...rows.map((k) => k.requests));
  const W = 640;
  const label = 170;
  const barH = 22;
  const gap = 8;
  const H = rows.length * (barH + gap) + 30;
  const scale = (W - label - 60) / max;
  const parts = [
    ["fulfilled", "bar-ok"],
    ["rejected", "bar-warn"],
    ["failed", "bar-bad"],
  ];
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-labelledby": "r-chart-title", id: "r-chart", class: "chart" },
    s("title", { id: "r-chart-title" }, t("rights.chartTitle", { year: rep.year })),
  );
  rows.forEach((k, i) => {
    const y = i * (barH + gap) + 4;
    svg.append(s("text", { x: label - 8, y: y + barH / 2 + 5, "text-anchor": "end", class: "chart-label" }, kindName(k.kind)));
    let x = label;
    for (const [p, cls] of parts) {
      const w = k[p] * scale;
      if (w > 0) {
        svg.append(s("rect", { x, y, width: w, height: barH, class: cls }, s("title", null, `${kindName(k.kind)}: ${t("rights." + p)} ${k[p]}`)));
        x += w;
      }
    }
    svg.append(s("text", { x: x + 6, y: y + barH / 2 + 5, class: "chart-value" }, fmtNum(k.requests)));
  });
  const ly = rows.length * (barH + gap) + 16;
  parts.forEach(([p, cls], i) => {
    const lx = label + i * 130;
    svg.append(s("rect", { x: lx, y: ly - 10, width: 12, height: 12, class: cls }));
    svg.append(s("text", { x: lx + 18, y: ly, class: "chart-label" }, t("rights." + p)));
  });
  return svg;
}

RENDER.rights = async (main, st) => {
  st.year ??= new Date().getFullYear();
  const year = h("input", { id: "r-year", type: "number", min: "2000", max: "9999", value: String(st.year), class: "num" });
  const out = h("section", { id: "r-out", "aria-live": "polite", "aria-labelledby": "r-out-title" });
  const loadBtn = h("button", { type: "submit", class: "btn btn-primary", id: "r-load" }, t("rights.load"));
  const csvBtn = button(t("rights.csv"), async () => {
    try {
      await busy(csvBtn, () => api.download("/v1/admin/reports/rights", { year: year.value, format: "csv" }, `rights-${year.value}.csv`));
      announce(t("rights.csvDone", { year: year.value }));
    } catch (e) {
      showError(e, out);
    }
  }, "btn", { id: "r-csv" });

  async function load() {
    st.year = Number(year.value);
    setError(year, "");
    try {
      const r = await busy(loadBtn, () => api.call("/v1/admin/reports/rights", { query: { year: year.value } }));
      const rep = r.body;
      replace(
        out,
        h("h3", { id: "r-out-title" }, t("rights.title", { year: rep.year })),
        h("p", { id: "r-total" }, t("rights.total", { n: fmtNum(rep.total) })),
        rep.kinds.length ? rightsChart(rep) : h("p", null, t("rights.none")),
        rep.kinds.length
          ? h(
              "table",
              { class: "grid", id: "r-table" },
              h("caption", null, t("rights.tableCaption", { year: rep.year })),
              h("thead", null, h("tr", null, ["kind", "requests", "fulfilled", "rejected", "failed", "median", "p95"].map((c) => h("th", { scope: "col" }, t("rights." + c))))),
              h(
                "tbody",
                null,
                rep.kinds.map((k) =>
                  h("tr", null, h("th", { scope: "row" }, kindName(k.kind), " ", h("code", { class: "muted" }, k.kind)), h("td", { class: "n" }, fmtNum(k.requests)), h("td", { class: "n" }, fmtNum(k.fulfilled)), h("td", { class: "n" }, fmtNum(k.rejected)), h("td", { class: "n" }, fmtNum(k.failed)), h("td", { class: "n" }, fmtNum(k.median_ms)), h("td", { class: "n" }, fmtNum(k.p95_ms))),
                ),
              ),
            )
          : null,
      );
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 422) setError(year, problemText(e));
      else if (e instanceof api.ApiError && e.status === 501) replace(out, h("p", { class: "warning" }, t("rights.noLog")));
      else showError(e, out);
    }
  }

  replace(
    main,
    pageHead("rights", t("rights.intro")),
    h(
      "form",
      { class: "card row", novalidate: true, onsubmit: (ev) => { ev.preventDefault(); load(); } },
      field(t("rights.year"), year),
      h("div", { class: "actions" }, loadBtn, csvBtn),
    ),
    out,
  );
  await load();
};

// ---- settings history (admin) ----

RENDER.history = async (main) => {
  const r = (await api.call("/v1/admin/settings/history")).body;
  const rows = [...r.receipts].reverse();
  replace(
    main,
    pageHead("history", t("history.intro")),
    h(
      "p",
      { id: "h-chain", class: "badge " + (r.chain_valid ? "badge-ok" : "badge-danger") },
      t(r.chain_valid ? "chain.valid" : "chain.broken"),
    ),
    rows.length === 0
      ? h("p", null, t("history.none"))
      : h(
          "table",
          { class: "grid", id: "h-table" },
          h("caption", null, t("history.caption", { n: rows.length })),
          h("thead", null, h("tr", null, ["seq", "at", "who", "changes"].map((c) => h("th", { scope: "col" }, t("history." + c))))),
          h(
            "tbody",
            null,
            rows.map((rc) =>
              h(
                "tr",
                null,
                h("th", { scope: "row" }, String(rc.seq)),
                h("td", null, fmtTime(rc.at)),
                h("td", null, tOr("actor." + rc.actor, rc.actor), " ", h("code", null, rc.surface || "")),
                h("td", null, (rc.diff || []).length ? h("ul", { class: "diff" }, rc.diff.map((l) => h("li", null, h("code", null, l)))) : h("span", { class: "muted" }, rc.new || "")),
              ),
            ),
          ),
        ),
  );
};

// ---- user lookup (app) ----

const SURFACE = "support_desk";

RENDER.users = async (main, st) => {
  const id = h("input", { id: "u-id", type: "text", spellcheck: "false", autocomplete: "off", value: st.user || "", maxlength: "128" });
  const out = h("div", { id: "u-out" });
  const btn = h("button", { type: "submit", class: "btn btn-primary", id: "u-lookup" }, t("users.lookup"));
  const form = h(
    "form",
    { class: "card row", novalidate: true, role: "search" },
    field(t("users.id"), id, t("users.idHint")),
    h("div", { class: "actions" }, btn),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const u = id.value.trim();
    if (!/^[A-Za-z0-9_.@+=-]{1,128}$/.test(u) || u === "." || u === "..") {
      setError(id, t("users.badId"));
      id.focus();
      return;
    }
    setError(id, "");
    st.user = u;
    lookup(true);
  });
  replace(main, pageHead("users", t("users.intro")), form, out);
  if (st.user) await lookup(false);

  async function lookup(focus) {
    const u = st.user;
    const p = "/v1/users/" + encodeURIComponent(u);
    try {
      const [c, tg, rc] = await busy(btn, () => Promise.all([api.call(p + "/consent"), api.call(p + "/tags"), api.call(p + "/receipts")]));
      renderUser(u, c.body, tg.body, rc.body, rc.headers.get("X-Copy-Requests"));
      if (focus) document.getElementById("u-title")?.focus();
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 422) setError(id, problemText(e));
      else showError(e, out);
    }
  }

  async function act(label, path, opts) {
    try {
      const r = await api.call("/v1/users/" + encodeURIComponent(st.user) + path, opts);
      announce(t(r.status === 202 ? "users.donePending" : "users.done", { what: label }), r.status === 202 ? "warn" : "ok");
      await lookup(false);
      document.getElementById("u-title")?.focus();
    } catch (e) {
      showError(e, document.getElementById("u-actions-out") || out);
    }
  }

  function renderUser(u, c, tg, rc, copies) {
    const s0 = c.state || {};
    const yes = (b) => (b ? t("common.yes") : t("common.no"));
    const consent = h(
      "section",
      { class: "card", "aria-labelledby": "u-consent-title", id: "u-consent" },
      h("h3", { id: "u-consent-title" }, t("users.consent")),
      h(
        "dl",
        { class: "facts" },
        h("dt", null, t("users.personalization")),
        h("dd", { id: "u-personalization", "data-on": String(!s0.personalization_off) }, s0.personalization_off ? h("span", { class: "badge badge-warn" }, t("common.off")) : h("span", { class: "badge badge-ok" }, t("common.on"))),
        h("dt", null, t("users.refusedChannels")),
        h("dd", { id: "u-refused" }, (s0.refused_channels || []).length ? s0.refused_channels.map((x) => h("code", { class: "tagchip" }, x)) : t("common.none")),
        h("dt", null, t("users.sensitive")),
        h(
          "dd",
          null,
          (s0.sensitive || []).length
            ? h("ul", { class: "plain" }, s0.sensitive.map((g) => h("li", null, catName(g.category), " — ", t(g.granted ? "users.granted" : "users.withdrawn"), g.purpose ? ` (${tOr("purpose." + g.purpose, g.purpose)}, v${g.policy_version})` : "", g.by_guardian ? " · " + t("users.byGuardian") : "", " · ", fmtTime(g.at))))
            : t("common.none"),
        ),
        h("dt", null, t("users.minor")),
        h("dd", null, yes(s0.minor), s0.minor ? [" · ", t("users.guardian"), " ", s0.guardian && s0.guardian.granted ? t("users.granted") : t("users.notGiven")] : null),
        h("dt", null, t("users.restricted")),
        h("dd", { id: "u-restricted" }, s0.restricted ? h("span", { class: "badge badge-warn" }, t("common.yes")) : t("common.no")),
        h("dt", null, t("users.erased")),
        h("dd", { id: "u-erased" }, s0.erased ? h("span", { class: "badge badge-danger" }, t("common.yes")) : t("common.no")),
        h("dt", null, t("users.refusals")),
        h("dd", null, (s0.refusals || []).length ? h("ul", { class: "plain" }, s0.refusals.map((r) => h("li", null, h("code", null, r.kind), " · ", fmtTime(r.at)))) : t("common.none")),
        h("dt", null, t("users.version")),
        h("dd", null, String(c.version)),
      ),
    );

    const tags = h(
      "section",
      { class: "card", "aria-labelledby": "u-tags-title", id: "u-tags" },
      h("h3", { id: "u-tags-title" }, t("users.tags")),
      (tg.tags || []).length
        ? h(
            "table",
            { class: "grid" },
            h("thead", null, h("tr", null, ["tag", "source", "at", "usable"].map((k) => h("th", { scope: "col" }, t("users.tag." + k))), h("th", { scope: "col" }, h("span", { class: "sr-only" }, t("common.actions"))))),
            h(
              "tbody",
              null,
              tg.tags.map((x) =>
                h(
                  "tr",
                  null,
                  h("th", { scope: "row" }, h("code", null, x.tag)),
                  h("td", null, t("source." + x.source)),
                  h("td", null, fmtTime(x.at)),
                  h("td", null, x.usable ? h("span", { class: "badge badge-ok" }, t("common.yes")) : h("span", { class: "badge badge-warn" }, t("common.no"))),
                  h(
                    "td",
                    null,
                    button(t("users.deleteTag"), async () => {
                      const ok = await confirmDialog({ title: t("users.deleteTagTitle", { tag: x.tag }), body: h("p", null, t("users.deleteTagBody")), ok: t("users.deleteTag"), danger: true });
                      if (ok) act(t("users.deleteTagDone", { tag: x.tag }), "/tags/" + encodeURIComponent(x.tag), { method: "DELETE" });
                    }, "btn btn-small", { "aria-label": t("users.deleteTagOf", { tag: x.tag }) }),
                  ),
                ),
              ),
            ),
          )
        : h("p", null, t("users.noTags")),
      (tg.suppressed || []).length
        ? [h("h4", null, t("users.suppressed")), h("p", { class: "hint" }, t("users.suppressedHint")), h("ul", { class: "plain" }, tg.suppressed.map((x) => h("li", null, h("code", null, x.tag), " · ", fmtTime(x.at))))]
        : null,
    );

    const receipts = h(
      "section",
      { class: "card", "aria-labelledby": "u-rc-title", id: "u-receipts" },
      h("h3", { id: "u-rc-title" }, t("users.receipts")),
      h("p", null, h("span", { id: "u-chain", class: "badge " + (rc.chain_valid ? "badge-ok" : "badge-danger"), "data-valid": String(rc.chain_valid) }, t(rc.chain_valid ? "chain.valid" : "chain.broken")), copies ? h("span", { class: "meta" }, " ", t("users.copies", { n: copies })) : null),
      rc.erased && rc.erasure
        ? h(
            "div",
            { class: "warning" },
            h("h4", null, t("users.erasure")),
            h("p", null, t("users.erasedAt", { at: fmtTime(rc.erasure.erased_at), by: tOr("actor." + rc.erasure.by, rc.erasure.by) })),
            h("p", null, t("users.deleted"), " ", (rc.erasure.deleted || []).join(", ")),
            h("ul", { class: "plain" }, (rc.erasure.retained || []).map((x) => h("li", null, JSON.stringify(x)))),
          )
        : null,
      rc.withheld ? h("p", { class: "hint" }, t("users.withheld", { n: rc.withheld })) : null,
      (rc.receipts || []).length
        ? h(
            "table",
            { class: "grid small" },
            h("thead", null, h("tr", null, ["seq", "at", "actor", "op", "subject", "change"].map((k) => h("th", { scope: "col" }, t("users.rc." + k))))),
            h(
              "tbody",
              null,
              [...rc.receipts].reverse().map((x) =>
                h("tr", null, h("th", { scope: "row" }, String(x.seq)), h("td", null, fmtTime(x.at)), h("td", null, tOr("actor." + x.actor, x.actor), " ", h("code", { class: "muted" }, x.surface || "")), h("td", null, tOr("op." + x.op, x.op)), h("td", null, h("code", null, x.subject || "")), h("td", null, `${x.old || ""} → ${x.new || ""}`)),
              ),
            ),
          )
        : h("p", null, t("users.noReceipts")),
    );

    // what the user may ask for
    const chanIn = h("input", { id: "u-channel", type: "text", list: "u-channels", spellcheck: "false", class: "short" });
    const ref = h("input", { id: "u-ref", type: "text", spellcheck: "false", class: "short", maxlength: "128" });
    const idv = h("select", { id: "u-idv" }, ["password", "sms_otp", "face", "in_person", "guardian"].map((m) => h("option", { value: m }, tOr("idv." + m, m))));
    const eraseIn = h("input", { id: "u-erase-confirm", type: "text", spellcheck: "false", autocomplete: "off", class: "short" });
    const chanOK = () => {
      if (!/^[a-z][a-z0-9_]{0,31}$/.test(chanIn.value.trim())) {
        setError(chanIn, t("users.badChannel"));
        chanIn.focus();
        return false;
      }
      setError(chanIn, "");
      return true;
    };
    const refOK = () => {
      if (ref.value && !/^[A-Za-z0-9_.@+=-]{1,128}$/.test(ref.value)) {
        setError(ref, t("users.badRef"));
        ref.focus();
        return false;
      }
      setError(ref, "");
      return true;
    };
    const actions = h(
      "section",
      { class: "card", "aria-labelledby": "u-act-title", id: "u-actions" },
      h("h3", { id: "u-act-title" }, t("users.actions")),
      h("p", { class: "hint" }, t("users.actionsHint")),
      h("div", { id: "u-actions-out", "aria-live": "assertive" }),
      h(
        "div",
        { class: "action" },
        h("h4", null, t("users.act.personalization")),
        button(t(s0.personalization_off ? "users.act.turnOn" : "users.act.turnOff"), () => act(t(s0.personalization_off ? "users.act.turnOn" : "users.act.turnOff"), "/consent/personalization", { method: "PUT", body: { enabled: !!s0.personalization_off, surface: SURFACE } }), "btn", { id: "u-toggle-personalization" }),
      ),
      h(
        "div",
        { class: "action" },
        h("h4", null, t("users.act.channel")),
        h("datalist", { id: "u-channels" }, ["email", "in_app", "push", "sms", ...(s0.refused_channels || [])].filter((v, i, a) => a.indexOf(v) === i).map((v) => h("option", { value: v }))),
        h(
          "div",
          { class: "row" },
          field(t("users.channel"), chanIn),
          button(t("users.act.refuse"), () => chanOK() && act(t("users.act.refusedCh", { c: chanIn.value.trim() }), "/consent/channels/" + encodeURIComponent(chanIn.value.trim()), { method: "PUT", body: { refused: true, surface: SURFACE } }), "btn"),
          button(t("users.act.allow"), () => chanOK() && act(t("users.act.allowedCh", { c: chanIn.value.trim() }), "/consent/channels/" + encodeURIComponent(chanIn.value.trim()), { method: "PUT", body: { refused: false, surface: SURFACE } }), "btn"),
        ),
      ),
      (s0.sensitive || []).some((g) => g.granted)
        ? h(
            "div",
            { class: "action" },
            h("h4", null, t("users.act.withdraw")),
            s0.sensitive.filter((g) => g.granted).map((g) => button(t("users.act.withdrawOf", { cat: catName(g.category) }), () => act(t("users.act.withdrawOf", { cat: catName(g.category) }), "/consent/sensitive/" + g.category, { method: "PUT", body: { granted: false, surface: SURFACE } }), "btn")),
          )
        : null,
      h(
        "div",
        { class: "action" },
        h("h4", null, t("users.act.restriction")),
        h("div", { class: "row" }, field(t("users.ref"), ref, t("users.refHint"))),
        s0.restricted
          ? button(t("users.act.lift"), () => refOK() && act(t("users.act.lift"), "/restriction", { method: "PUT", body: { restricted: false, by: "user", ref: ref.value || undefined, surface: SURFACE } }), "btn", { id: "u-lift" })
          : button(t("users.act.restrict"), () => refOK() && act(t("users.act.restrict"), "/restriction", { method: "PUT", body: { restricted: true, by: "admin", ref: ref.value || undefined, surface: SURFACE } }), "btn", { id: "u-restrict" }),
        s0.restricted ? h("p", { class: "hint" }, t("users.act.liftHint")) : null,
      ),
      h(
        "div",
        { class: "action" },
        h("h4", null, t("users.act.export")),
        h(
          "div",
          { class: "row" },
          field(t("users.idv"), idv, t("users.idvHint")),
          button(t("users.act.download"), async (ev) => {
            try {
              await busy(ev.currentTarget, () => api.download("/v1/users/" + encodeURIComponent(u) + "/export", null, `export-${u}.json`, { "X-Identity-Verification": idv.value }));
              announce(t("users.exported"));
            } catch (e) {
              showError(e, document.getElementById("u-actions-out"));
            }
          }, "btn"),
        ),
      ),
      s0.erased
        ? null
        : h(
            "div",
            { class: "action danger-zone" },
            h("h4", null, t("users.act.erase")),
            h("p", { class: "hint" }, t("users.act.eraseHint")),
            h(
              "div",
              { class: "row" },
              field(t("users.act.eraseType", { u }), eraseIn),
              button(t("users.act.eraseBtn"), () => {
                if (eraseIn.value !== u) {
                  setError(eraseIn, t("users.act.eraseMismatch", { u }));
                  eraseIn.focus();
                  return;
                }
                act(t("users.act.erased"), "", { method: "DELETE" });
              }, "btn btn-danger", { id: "u-erase" }),
            ),
          ),
    );

    replace(out, h("h3", { id: "u-title", tabindex: "-1", class: "user-title" }, t("users.title", { u })), h("div", { class: "cards" }, consent, tags, receipts, actions));
  }
};

// ---- audits (auditor) ----

const AUDITS_KEY = "recguard.console.audits";

function keptAudits() {
  try {
    return JSON.parse(sessionStorage.getItem(AUDITS_KEY) || "[]");
  } catch {
    return [];
  }
}

function keepAudit(a) {
  const all = keptAudits().filter((x) => x.id !== a.id);
  all.unshift(a);
  sessionStorage.setItem(AUDITS_KEY, JSON.stringify(all.slice(0, 100)));
}

const DEFAULT_SPEC = {
  name: "personalized vs opted out",
  groups: [
    { name: "all", segment: "*" },
    { name: "opted_out", segment: "consent:personalization_off" },
  ],
  reference: "all",
  metrics: [{ kind: "rate", field: "clicked" }],
};

RENDER.audits = async (main, st) => {
  st.spec ??= JSON.stringify(DEFAULT_SPEC, null, 2);
  const spec = h("textarea", { id: "d-spec", rows: "10", spellcheck: "false", class: "code", value: st.spec });
  spec.addEventListener("input", () => (st.spec = spec.value));
  const strict = h("input", { id: "d-strict", type: "checkbox" });
  const runBtn = h("button", { type: "submit", class: "btn btn-primary", id: "d-run" }, t("audits.run"));
  const auditOut = h("div", { id: "d-out", "aria-live": "polite" });
  const list = h("section", { id: "d-list", "aria-labelledby": "d-list-title" });
  const openId = h("input", { id: "d-open-id", type: "text", spellcheck: "false", class: "short", pattern: "[0-9a-f]{32}" });
  const enfFrom = h("input", { id: "e-from", type: "datetime-local" });
  const enfTo = h("input", { id: "e-to", type: "datetime-local" });
  const enfBtn = h("button", { type: "submit", class: "btn btn-primary", id: "e-run" }, t("enf.run"));
  const enfOut = h("div", { id: "e-out", "aria-live": "polite" });
  const verBtn = button(t("ver.run"), () => verify(), "btn btn-primary", { id: "v-run" });
  const verOut = h("div", { id: "v-out", "aria-live": "polite" });

  function reportLinks(kind, id) {
    const base = kind === "enforcement" ? "/v1/audits/enforcement/" : "/v1/audits/";
    return h(
      "span",
      { class: "links" },
      ["html", "csv", "json"].map((f) =>
        button(t("audits.dl." + f), async (ev) => {
          try {
            await busy(ev.currentTarget, () => api.download(base + id, { format: f }, `${kind}-${id}.${f}`));
            announce(t(f === "html" ? "audits.htmlDone" : "audits.dlDone"));
          } catch (e) {
            showError(e);
          }
        }, "btn btn-small", { "aria-label": t("audits.dlOf." + f, { id: id.slice(0, 8) }) }),
      ),
    );
  }

  function renderList() {
    const all = keptAudits();
    replace(
      list,
      h("h3", { id: "d-list-title" }, t("audits.list")),
      h("p", { class: "hint" }, t("audits.listHint")),
      all.length === 0
        ? h("p", null, t("audits.noneYet"))
        : h(
            "table",
            { class: "grid", id: "d-table" },
            h("thead", null, h("tr", null, ["kind", "id", "at", "summary", "report"].map((c) => h("th", { scope: "col" }, t("audits.col." + c))))),
            h("tbody", null, all.map((a) => h("tr", null, h("td", null, t("audits.kind." + a.kind)), h("th", { scope: "row" }, h("code", null, a.id.slice(0, 12) + "…")), h("td", null, fmtTime(a.at)), h("td", null, a.summary), h("td", null, reportLinks(a.kind, a.id))))),
          ),
      h(
        "form",
        { class: "row", novalidate: true, onsubmit: (ev) => { ev.preventDefault(); openKept(); } },
        field(t("audits.openId"), openId, t("audits.openIdHint")),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "btn" }, t("audits.open"))),
      ),
    );
  }

  async function openKept() {
    const id = openId.value.trim();
    if (!/^[0-9a-f]{32}$/.test(id)) {
      setError(openId, t("audits.badId"));
      openId.focus();
      return;
    }
    setError(openId, "");
    try {
      let kind = "audit";
      let r;
      try {
        r = await api.call("/v1/audits/" + id);
      } catch (e) {
        if (!(e instanceof api.ApiError) || e.status !== 404) throw e;
        kind = "enforcement";
        r = await api.call("/v1/audits/enforcement/" + id);
      }
      const rep = r.body.report || r.body;
      keepAudit({ kind, id, at: rep.generated || new Date().toISOString(), summary: kind === "audit" ? auditSummary(rep) : enfSummary(rep) });
      renderList();
      announce(t("audits.opened"));
    } catch (e) {
      setError(openId, problemText(e));
    }
  }

  function auditSummary(rep) {
    return t("audits.summary", { events: fmtNum(rep.events || 0), groups: (rep.groups || []).length, findings: (rep.findings || []).length });
  }
  function enfSummary(rep) {
    return t("enf.summary", { entries: fmtNum(rep.entries || 0), violations: fmtNum((rep.totals && rep.totals.all) || 0) });
  }

  async function runAudit() {
    let body;
    try {
      body = { spec: JSON.parse(spec.value), strict: strict.checked };
      setError(spec, "");
    } catch (e) {
      setError(spec, t("audits.badJSON", { err: e.message }));
      spec.focus();
      return;
    }
    try {
      const r = await busy(runBtn, () => api.call("/v1/audits", { method: "POST", body }));
      const rep = r.body.report;
      keepAudit({ kind: "audit", id: r.body.id, at: rep.generated, summary: auditSummary(rep) });
      replace(
        auditOut,
        h("div", { class: "card ok", id: "d-done" }, h("h4", null, t("audits.done")), h("p", null, auditSummary(rep)), (rep.findings || []).length ? h("ul", null, rep.findings.map((f) => h("li", null, f.detail || f.metric || JSON.stringify(f)))) : h("p", null, t("audits.noFindings")), reportLinks("audit", r.body.id)),
      );
      renderList();
    } catch (e) {
      if (e instanceof api.ApiError && (e.status === 422 || e.status === 400)) setError(spec, problemText(e));
      else showError(e, auditOut);
    }
  }

  async function runEnforcement() {
    const body = {};
    if (enfFrom.value) body.from = new Date(enfFrom.value).toISOString();
    if (enfTo.value) body.to = new Date(enfTo.value).toISOString();
    try {
      const r = await busy(enfBtn, () => api.call("/v1/audits/enforcement", { method: "POST", body }));
      const rep = r.body.report;
      keepAudit({ kind: "enforcement", id: r.body.id, at: rep.generated, summary: enfSummary(rep) });
      const totals = rep.totals || {};
      replace(
        enfOut,
        h(
          "div",
          { class: "card " + ((rep.violations || []).length ? "bad" : "ok"), id: "e-done" },
          h("h4", null, t("enf.done")),
          h("p", null, enfSummary(rep)),
          Object.keys(totals.by_kind || {}).length
            ? h("ul", { class: "plain", id: "e-kinds" }, Object.entries(totals.by_kind).map(([k, n]) => h("li", null, tOr("viol." + k, k), ": ", fmtNum(n))))
            : h("p", null, t("enf.none")),
          reportLinks("enforcement", r.body.id),
        ),
      );
      renderList();
    } catch (e) {
      showError(e, enfOut);
    }
  }

  async function verify() {
    try {
      const r = await busy(verBtn, () => api.call("/v1/audits/verification", { method: "POST" }));
      const v = r.body;
      replace(
        verOut,
        h(
          "div",
          { class: "card " + (v.verified ? "ok" : "bad"), id: "v-done" },
          h("h4", null, t(v.verified ? "ver.ok" : "ver.bad")),
          h(
            "dl",
            { class: "facts" },
            ["users", "receipts", "chains_verified", "chains_broken", "seconds"].flatMap((k) => [h("dt", null, t("ver." + k)), h("dd", null, fmtNum(v[k] || 0))]),
            h("dt", null, t("ver.complete")),
            h("dd", null, v.complete ? t("common.yes") : t("common.no")),
          ),
          (v.findings || []).length ? h("pre", { class: "code small" }, JSON.stringify(v.findings, null, 2)) : null,
        ),
      );
    } catch (e) {
      showError(e, verOut);
    }
  }

  replace(
    main,
    pageHead("audits", t("audits.intro")),
    h(
      "section",
      { class: "card", "aria-labelledby": "d-title" },
      h("h3", { id: "d-title" }, t("audits.startTitle")),
      h(
        "form",
        { novalidate: true, onsubmit: (ev) => { ev.preventDefault(); runAudit(); } },
        field(t("audits.spec"), spec, t("audits.specHint")),
        field(t("audits.strict"), strict, t("audits.strictHint")),
        h("div", { class: "actions" }, runBtn),
      ),
      auditOut,
    ),
    list,
    h(
      "section",
      { class: "card", "aria-labelledby": "e-title" },
      h("h3", { id: "e-title" }, t("enf.title")),
      h("p", { class: "hint" }, t("enf.intro")),
      h(
        "form",
        { class: "row", novalidate: true, onsubmit: (ev) => { ev.preventDefault(); runEnforcement(); } },
        field(t("enf.from"), enfFrom),
        field(t("enf.to"), enfTo),
        h("div", { class: "actions" }, enfBtn),
      ),
      enfOut,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "v-title" },
      h("h3", { id: "v-title" }, t("ver.title")),
      h("p", { class: "hint" }, t("ver.intro")),
      h("div", { class: "actions" }, verBtn),
      verOut,
    ),
  );
  renderList();
};

// ---- API explorer (every role) ----

RENDER.api = async (main, st) => {
  if (!st.doc) {
    const r = await fetch("/openapi.json", { credentials: "omit", cache: "no-store" });
    st.doc = await r.json();
  }
  const doc = st.doc;
  const filter = h("input", { id: "x-filter", type: "search", value: st.filter || "", spellcheck: "false" });
  const list = h("div", { id: "x-list" });
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of ["get", "put", "post", "patch", "delete"]) if (item[m]) ops.push({ path, method: m, op: item[m], params: [...(item.parameters || []), ...(item[m].parameters || [])] });
  }
  function resolve(p) {
    if (p && p.$ref) {
      const name = p.$ref.split("/").pop();
      return (doc.components.parameters || {})[name] || p;
    }
    return p;
  }
  function renderOps() {
    const q = filter.value.trim().toLowerCase();
    st.filter = filter.value;
    const shown = ops.filter((o) => !q || (o.method + " " + o.path + " " + (o.op.summary || "")).toLowerCase().includes(q));
    replace(
      list,
      h("p", { class: "meta", "aria-live": "polite" }, t("api.count", { n: shown.length, total: ops.length })),
      shown.map((o) => {
        const params = o.params.map(resolve).filter((p) => p && (p.in === "path" || p.in === "query"));
        const inputs = params.map((p) => {
          const el = h("input", { type: "text", id: uid("x-p"), spellcheck: "false", class: "short", required: !!p.required });
          return { p, el };
        });
        const res = h("pre", { class: "code small response", "aria-live": "polite", hidden: true });
        const tryIt =
          o.method === "get"
            ? h(
                "form",
                {
                  class: "row",
                  novalidate: true,
                  onsubmit: async (ev) => {
                    ev.preventDefault();
                    let path = o.path;
                    const query = {};
                    for (const { p, el } of inputs) {
                      if (p.in === "path") path = path.replace("{" + p.name + "}", encodeURIComponent(el.value));
                      else if (el.value) query[p.name] = el.value;
                    }
                    res.hidden = false;
                    try {
                      const r = await api.call(path, { query });
                      replace(res, `${r.status}\n` + (typeof r.body === "string" ? r.body : JSON.stringify(r.body, null, 2)));
                    } catch (e) {
                      replace(res, `${e.status}\n` + JSON.stringify(e.problem, null, 2));
                    }
                  },
                },
                inputs.map(({ p, el }) => field(`${p.name} (${t("api.in." + p.in)})`, el)),
                h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-small" }, t("api.send"))),
              )
            : h("p", { class: "hint" }, t("api.readOnly"));
        return h(
          "details",
          { class: "op" },
          h("summary", null, h("span", { class: "method method-" + o.method }, o.method.toUpperCase()), " ", h("code", null, o.path), " ", h("span", { class: "muted" }, o.op.summary || "")),
          o.op.description ? h("p", { class: "desc" }, o.op.description) : null,
          params.length
            ? h("ul", { class: "plain" }, params.map((p) => h("li", null, h("code", null, p.name), ` (${p.in}${p.required ? ", " + t("api.required") : ""}) `, p.description || "")))
            : null,
          o.path.startsWith("/v1/") || o.path === "/healthz" || o.path === "/readyz" ? tryIt : null,
          res,
        );
      }),
    );
  }
  filter.addEventListener("input", renderOps);
  replace(
    main,
    pageHead("api", t("api.intro")),
    h("p", null, h("a", { href: "/openapi.json", download: "openapi.json", id: "x-download" }, t("api.download"))),
    field(t("api.filter"), filter),
    list,
  );
  renderOps();
};

// ---- start ----

async function start() {
  try {
    const r = await fetch("i18n.json", { cache: "no-cache" });
    STR = await r.json();
  } catch {
    STR = { en: {}, "zh-CN": {} };
  }
  lang = pickLang();
  document.documentElement.lang = lang;
  document.title = t("app.title");
  window.addEventListener("hashchange", () => route());
  await route();
  document.body.dataset.ready = "true";
}

start();
