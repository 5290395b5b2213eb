"use strict";
// The one script of every screen. The node renders each page and each part of it on the server;
// this script only
// - renders a part again (`data-fragment`: the URL of its HTML, with the page's own query) when
//   the node's change stream (`data-stream` on <body>) sends an event the part follows
//   (`data-on`; `order-shown` is an order event about the order in the page's query),
//   keeping what was typed into its fields meanwhile;
// - sends an action (a form or button with `data-api="METHOD /path"`) to the node's JSON API, the
//   CLI's API: a button's body is `data-body`, a form's its named fields (empty ones left out,
//   `data-wrap="items"` puts them in a list of one under that key beside `data-body`'s); an
//   error shows the API's `detail` next to the field it names (`data-matches`, the earliest
//   match in the detail wins), else in `data-error`. After an answer: `data-then="reload"`
//   reloads, `data-then="open"` puts the answer's id in the page's query (`?order=`), and
//   `data-shows` fills that element with `data-shows-text`, `{key}` being the answer's fields;
//   then the form is reset and every part rendered again;
// - shows times (`<time data-ms>`) in the browser's time zone and keeps waiting clocks
//   (`data-since`) moving.
(() => {
  const parts = [...document.querySelectorAll("[data-fragment]")];
  const link = document.getElementById("link");

  function setLink(text, tone) {
    if (!link) return;
    link.textContent = text;
    link.className = tone;
  }

  function localTimes(root) {
    for (const node of root.querySelectorAll("time[data-ms]")) {
      const date = new Date(Number(node.dataset.ms));
      node.textContent = node.dataset.show === "time" ? date.toLocaleTimeString() : date.toLocaleString();
    }
  }

  function tick(clock) {
    const seconds = Math.max(0, Math.floor((Date.now() - Number(clock.dataset.since)) / 1000));
    clock.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    clock.classList.toggle("late", seconds > 15 * 60);
  }

  const query = () => new URLSearchParams(location.search);

  function partUrl(part) {
    const url = new URL(part.dataset.fragment, location.href);
    for (const [key, value] of query()) url.searchParams.set(key, value);
    if (part.dataset.today) {
      const midnight = new Date();
      midnight.setHours(0, 0, 0, 0);
      url.searchParams.set(part.dataset.today, String(midnight.getTime()));
    }
    return url;
  }

  // The element a field's error goes in.
  const errorOf = (field) => document.getElementById(field.getAttribute("aria-describedby") || "");

  // Replaces a part's content with `html`; a field typed into or marked invalid keeps its value,
  // its mark and its error, and the focus stays where it was.
  function swap(part, html) {
    const focused = part.contains(document.activeElement) ? document.activeElement.id : "";
    const kept = [];
    for (const field of part.querySelectorAll("input[id], textarea[id]")) {
      const typed = field.type === "checkbox" ? field.checked !== field.defaultChecked : field.value !== field.defaultValue;
      const invalid = field.getAttribute("aria-invalid") === "true";
      if (typed || invalid) {
        kept.push({ id: field.id, value: field.value, checked: field.checked, typed, invalid, error: errorOf(field)?.textContent });
      }
    }
    part.innerHTML = html;
    for (const was of kept) {
      const field = document.getElementById(was.id);
      if (!field || !part.contains(field)) continue;
      if (was.typed && field.type === "checkbox") field.checked = was.checked;
      else if (was.typed) field.value = was.value;
      if (was.invalid) {
        field.setAttribute("aria-invalid", "true");
        const error = errorOf(field);
        if (error) error.textContent = was.error || "";
      }
    }
    const again = focused && document.getElementById(focused);
    if (again) again.focus();
    localTimes(part);
    part.querySelectorAll("[data-since]").forEach(tick);
  }

  // Renders a part again; resolves once the part shows the node's state as it was at least when
  // asked (asked while a rendering is under way, it renders once more after that one).
  const rendering = new Map();
  function render(part) {
    const running = rendering.get(part);
    if (running) {
      running.again = true;
      return running.done;
    }
    const state = { again: false };
    state.done = (async () => {
      try {
        do {
          state.again = false;
          const answer = await fetch(partUrl(part), { credentials: "same-origin" });
          if (answer.status === 401) {
            location.reload();
            return;
          }
          if (answer.ok) swap(part, await answer.text());
        } while (state.again);
      } catch {
        setLink("reconnecting…", "down");
      } finally {
        rendering.delete(part);
      }
    })();
    rendering.set(part, state);
    return state.done;
  }

  const renderAll = () => Promise.all(parts.map(render));

  function focusOn(selector) {
    const node = selector && document.querySelector(selector);
    if (node) node.focus();
  }

  // One API request: `{ ok, body }`, the body being the answer or the API's `{error, detail}`.
  async function call(method, path, body) {
    const options = { method, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers = { "content-type": "application/json" };
      options.body = JSON.stringify(body);
    }
    try {
      const answer = await fetch(path, options);
      const text = await answer.text();
      let json = {};
      try {
        json = text ? JSON.parse(text) : {};
      } catch {
        json = { error: "unreadable", detail: answer.statusText };
      }
      return { ok: answer.ok, body: json };
    } catch (error) {
      return { ok: false, body: { error: "unreachable", detail: `the node did not answer: ${error.message}` } };
    }
  }

  function fields(form) {
    const values = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.tagName === "BUTTON") continue;
      if (field.type === "checkbox") {
        values[field.name] = field.checked;
        continue;
      }
      const value = field.value.trim();
      if (value !== "" || field.dataset.optional === undefined) values[field.name] = value;
    }
    return values;
  }

  function clearErrors(control) {
    const scope = control.form || control;
    const fieldsOf = scope.elements ? [...scope.elements] : [];
    for (const field of fieldsOf) {
      field.removeAttribute("aria-invalid");
      const error = errorOf(field);
      if (error) error.textContent = "";
    }
    const box = control.dataset.error && document.querySelector(control.dataset.error);
    if (box) box.textContent = "";
  }

  function showError(control, problem) {
    const detail = problem.detail || problem.error;
    const form = control.form || (control.tagName === "FORM" ? control : null);
    let named = null;
    let at = Infinity;
    for (const field of form ? form.elements : []) {
      const found = field.dataset.matches ? detail.search(new RegExp(field.dataset.matches, "i")) : -1;
      if (found >= 0 && found < at) {
        named = field;
        at = found;
      }
    }
    const box = named ? errorOf(named) : control.dataset.error && document.querySelector(control.dataset.error);
    if (named) {
      named.setAttribute("aria-invalid", "true");
      named.focus();
    }
    if (box) box.textContent = detail;
  }

  async function act(control) {
    const [method, path] = control.dataset.api.split(" ");
    let body = control.dataset.body ? JSON.parse(control.dataset.body) : undefined;
    if (control.tagName === "FORM") {
      const values = fields(control);
      body = control.dataset.wrap ? { ...body, [control.dataset.wrap]: [values] } : { ...body, ...values };
    }
    clearErrors(control);
    // A button pressed twice sends once.
    if (control.tagName === "BUTTON") control.disabled = true;
    const answer = await call(method, path, body);
    if (control.tagName === "BUTTON") control.disabled = false;
    if (!answer.ok) {
      showError(control, answer.body);
      return;
    }
    if (control.dataset.then === "reload") {
      location.reload();
      return;
    }
    if (control.dataset.then === "open") history.replaceState(null, "", `?order=${answer.body.id}`);
    const shows = control.dataset.shows && document.querySelector(control.dataset.shows);
    if (shows) {
      shows.textContent = control.dataset.showsText.replace(/\{(\w+)\}/g, (_, key) => answer.body[key] ?? "");
      shows.hidden = false;
    }
    if (control.tagName === "FORM") control.reset();
    await renderAll();
    focusOn(control.dataset.focus);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    act(form);
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-api], button[data-select]");
    if (!button) return;
    if (button.dataset.api) {
      act(button);
      return;
    }
    // `data-select="order=ID"` (or "order=" for none) puts that in the page's query.
    const [key, value] = button.dataset.select.split("=");
    const next = query();
    if (value) next.set(key, value); else next.delete(key);
    history.replaceState(null, "", `${location.pathname}${next.size ? `?${next}` : ""}`);
    renderAll().then(() => focusOn(button.dataset.focus));
  });

  localTimes(document);
  document.querySelectorAll("[data-since]").forEach(tick);
  setInterval(() => document.querySelectorAll("[data-since]").forEach(tick), 1000);

  const streamPath = document.body.dataset.stream;
  if (!streamPath) return;
  const stream = new EventSource(streamPath);
  stream.addEventListener("ready", () => {
    setLink("live", "live");
    renderAll();
  });
  stream.addEventListener("resync", renderAll);
  const follows = (part, name) => (part.dataset.on || "").split(" ").includes(name);
  for (const name of new Set(parts.flatMap((part) => (part.dataset.on || "").split(" ")))) {
    if (name === "order-shown" || name === "") continue;
    stream.addEventListener(name, () => parts.filter((part) => follows(part, name)).forEach(render));
  }
  stream.addEventListener("order", (event) => {
    const shown = query().get("order");
    if (!shown || JSON.parse(event.data).id !== shown) return;
    parts.filter((part) => follows(part, "order-shown")).forEach(render);
  });
  stream.onerror = () => setLink("reconnecting…", "down");
})();
