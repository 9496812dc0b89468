// Small DOM helpers: elements are built with createElement and text nodes,
// never from HTML strings, so nothing the server answers is ever parsed as
// markup.

// h builds an element: h("button", {class: "x", onclick: f}, "text", child, [more]).
// Attributes: on<event> adds a listener; value, checked, disabled,
// selected and hidden set the property; false, null and undefined are left
// out; true is an empty attribute.
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

// s builds an SVG element the same way.
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, kids);
  return el;
}

const PROPS = new Set(["value", "checked", "disabled", "selected", "hidden", "open"]);

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) el[k] = v;
    else if (v === false || v === null || v === undefined) continue;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

export function append(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

// clear empties el and appends kids.
export function replace(el, ...kids) {
  el.replaceChildren();
  return append(el, kids);
}

let ids = 0;
// uid is a fresh element ID with prefix p.
export function uid(p) {
  ids++;
  return `${p}-${ids}`;
}

// field is a labelled control: {label, control, hint, error} where
// control is an element with an id; hint and error get IDs of their own
// tied to the control by aria-describedby.
export function field(label, control, hint, extra) {
  const id = control.id || uid("f");
  control.id = id;
  const hintEl = hint ? h("p", { class: "hint", id: id + "-hint" }, hint) : null;
  const errEl = h("p", { class: "field-error", id: id + "-error", hidden: true });
  const described = [hintEl ? id + "-hint" : null, id + "-error"].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  const isCheck = control.type === "checkbox" || control.type === "radio";
  const lab = h("label", { for: id }, label);
  return h("div", { class: "field" + (isCheck ? " field-check" : "") }, isCheck ? [control, lab] : [lab, control], extra, hintEl, errEl);
}

// setError shows (or with msg empty, hides) the inline error of control.
export function setError(control, msg) {
  const err = document.getElementById(control.id + "-error");
  if (!err) return;
  if (msg) {
    control.setAttribute("aria-invalid", "true");
    err.hidden = false;
    replace(err, msg);
  } else {
    control.removeAttribute("aria-invalid");
    err.hidden = true;
    err.replaceChildren();
  }
}
