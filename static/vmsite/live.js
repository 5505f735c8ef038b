// Live pages: one socket per page to /ws/live/. Each message says "this object changed, at this
// sequence number"; the parts of the page that show it ([data-live-topics]) fetch a fresh copy of
// themselves from the server (at most every THROTTLE_MS, the last change always included).
// A part asks its page's URL for itself by id (header X-Live-Fragment), and the server renders that
// part alone (accounts/mixins.py, LiveFragments); a part shared by many pages (an operation's
// progress box) names a URL of its own in data-live-url.
// A gap in an object's sequence numbers, or a reconnect, refreshes every live part of the page.
// When an operation shown on the page finishes, the parts whose topics include
// "operation-finished" refresh too: what the operation changed shows without a reload.
// Elements marked data-live-keep (with an id) are carried over from the old copy untouched.
// A part whose fresh copy is the one the server sent last is left in place, and a part is never
// replaced while a pointer is held down on it (until the click that the release makes): a click is
// not lost to a button replaced between its press and its release.
(function () {
  "use strict";
  const THROTTLE_MS = 250;
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 5000;
  const OFFLINE_REFRESH_MS = 5000;
  const PLURAL = { domain: "domains", host: "hosts", operation: "operations", inventory: "inventory" };
  const indicator = document.getElementById("live-indicator");
  const stylesElement = document.getElementById("domain-state-styles");
  const stateStyles = stylesElement ? JSON.parse(stylesElement.textContent) : {};
  const lastSeq = new Map();
  const timers = new Map();
  const served = new Map(); // part id -> its HTML as the server last sent it (or as the page came)
  let pressed = null; // the element a pointer is held down on
  let releaseWaiters = [];
  let retryMs = RETRY_MIN_MS;
  let everConnected = false;
  let offlineTimer = null;

  function setIndicator(state, text) {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.title = text;
    indicator.querySelector(".live-text").textContent = text;
  }

  function topicsOf(message) {
    const topics = [message.type + ":" + message.id, PLURAL[message.type] || message.type];
    if (message.host !== null && message.host !== undefined) topics.push("host:" + message.host);
    if (message.target) topics.push(message.target);
    return topics;
  }

  function liveRegions() {
    return Array.from(document.querySelectorAll("[data-live-topics]"));
  }

  function wants(region, topics) {
    const wanted = region.dataset.liveTopics.split(/\s+/).filter(Boolean);
    return topics.some(function (topic) { return wanted.includes(topic); });
  }

  function outermost(regions) {
    return regions.filter(function (region) {
      return !regions.some(function (other) { return other !== region && other.contains(region); });
    });
  }

  function schedule(region) {
    const id = region.id;
    if (!id) return;
    const timer = timers.get(id);
    if (timer) { timer.again = true; return; }
    timers.set(id, { again: false });
    refresh(id).finally(function () {
      setTimeout(function () {
        const state = timers.get(id);
        timers.delete(id);
        const current = document.getElementById(id);
        if (state && state.again && current) schedule(current);
      }, THROTTLE_MS);
    });
  }

  function checkedBoxes(region) {
    return Array.from(region.querySelectorAll("input[type=checkbox]:checked")).map(function (box) {
      return box.name + "=" + box.value;
    });
  }

  // The fields of a part whose value the user changed (by id): a refresh must not lose them.
  function typedValues(region) {
    const typed = new Map();
    region.querySelectorAll("input[id], textarea[id], select[id]").forEach(function (field) {
      if (field.type === "checkbox" || field.type === "radio" || field.type === "hidden") return;
      const changed = field.tagName === "SELECT"
        ? Array.from(field.options).some(function (option) { return option.selected !== option.defaultSelected; })
        : field.value !== field.defaultValue;
      if (changed) typed.set(field.id, field.value);
    });
    return typed;
  }

  function openedDisclosures(region) {
    return new Set(Array.from(region.querySelectorAll("details[id][open]")).map(function (details) { return details.id; }));
  }

  async function refresh(id) {
    const region = document.getElementById(id);
    if (!region) return;
    const url = region.dataset.liveUrl || window.location.href;
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { "X-Live-Fragment": id } });
    } catch (error) {
      return; // the server is away: the socket's reconnect brings a snapshot
    }
    if (response.status === 404 || response.status === 410) {
      region.replaceChildren(goneNotice(response.status === 410 ? await response.text() : ""));
      served.delete(id);
      delete region.dataset.liveTopics;
      return;
    }
    if (!response.ok) return;
    const holder = document.createElement("template");
    holder.innerHTML = await response.text();
    const fresh = holder.content.getElementById(id);
    if (!fresh || !document.getElementById(id)) return;
    const html = comparable(fresh);
    if (served.get(id) === html) {
      document.dispatchEvent(new CustomEvent("live:refreshed", { detail: { id: id, changed: false } }));
      return;
    }
    while (pressed && document.getElementById(id) && document.getElementById(id).contains(pressed)) {
      await pointerReleased();
    }
    const current = document.getElementById(id);
    if (!current) return;
    served.set(id, html);
    const checked = checkedBoxes(current);
    const opened = openedDisclosures(current);
    const typed = typedValues(current);
    const focused = document.activeElement && current.contains(document.activeElement) ? document.activeElement.id : "";
    const finishedBefore = finishedOperations(current);
    // Parts that scripts keep alive (a screenshot fed by its own socket) stay as they are.
    fresh.querySelectorAll("[data-live-keep][id]").forEach(function (placeholder) {
      const kept = current.querySelector("#" + CSS.escape(placeholder.id));
      if (kept) placeholder.replaceWith(kept);
    });
    current.replaceWith(fresh);
    fresh.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (checked.includes(box.name + "=" + box.value)) box.checked = true;
    });
    fresh.querySelectorAll("details[id]").forEach(function (details) {
      if (opened.has(details.id)) details.open = true; // a disclosure the user opened stays open
    });
    typed.forEach(function (value, fieldId) { // what the user typed into a form of the part is kept
      const field = fresh.querySelector("#" + CSS.escape(fieldId));
      if (field) field.value = value;
    });
    if (focused) {
      const field = fresh.querySelector("#" + CSS.escape(focused));
      if (field) field.focus();
    }
    if (Array.from(finishedOperations(fresh)).some(function (operation) { return !finishedBefore.has(operation); })) {
      document.body.dispatchEvent(new CustomEvent("operation-finished", { bubbles: true }));
    }
    document.dispatchEvent(new CustomEvent("live:refreshed", { detail: { id: id, changed: true } }));
  }

  function onPointerDown(event) {
    pressed = event.target;
  }

  function onPointerReleased() {
    pressed = null;
    const waiters = releaseWaiters;
    releaseWaiters = [];
    // The click that this release makes is dispatched in the same task: swap the parts after it.
    setTimeout(function () { waiters.forEach(function (resolve) { resolve(); }); }, 0);
  }

  function pointerReleased() {
    return new Promise(function (resolve) { releaseWaiters.push(resolve); });
  }

  // A part's HTML for comparing copies: Django masks its CSRF token anew in every rendering (any
  // mask of the session's token is accepted, so the old copy's forms still post).
  function comparable(part) {
    return part.outerHTML.replace(/(name="csrfmiddlewaretoken" value=")[^"]*"/g, '$1"');
  }

  // The ids of the finished operations' boxes in a part (the part itself may be one).
  function finishedOperations(element) {
    const boxes = Array.from(element.querySelectorAll("[data-finished='1'][id]"));
    if (element.dataset.finished === "1") boxes.push(element);
    return new Set(boxes.map(function (box) { return box.id; }));
  }

  function onOperationFinished() {
    outermost(liveRegions().filter(function (region) { return wants(region, ["operation-finished"]); }))
      .forEach(schedule);
  }

  function goneNotice(tombstonePage) {
    const notice = document.createElement("div");
    notice.className = "alert alert-secondary";
    notice.id = "live-gone";
    // A 410 is a tombstone's page: what happened and a link back to the list (tombstones/views.py).
    const told = tombstonePage && new DOMParser().parseFromString(tombstonePage, "text/html").getElementById("tombstone");
    if (told) notice.replaceChildren(...told.childNodes);
    else notice.textContent = "This no longer exists on its host (deleted, or moved away).";
    return notice;
  }

  function refreshAll() {
    outermost(liveRegions()).forEach(schedule);
  }

  function onMessage(message) {
    if (message.type === "pong") return;
    document.dispatchEvent(new CustomEvent("live:message", { detail: message }));
    if (message.type === "metrics") return; // graphs extend themselves (graphs.js); no part of a page reloads
    const key = message.type + ":" + message.id;
    if (typeof message.seq === "number") {
      const previous = lastSeq.get(key);
      lastSeq.set(key, Math.max(previous || 0, message.seq));
      if (previous !== undefined && message.seq > previous + 1) { refreshAll(); return; }
    }
    if (message.type === "domain") showState(message);
    const topics = topicsOf(message);
    outermost(liveRegions().filter(function (region) { return wants(region, topics); })).forEach(schedule);
  }

  // The badge changes at once; the rest of the row or page follows with its fresh copy.
  function showState(message) {
    const style = message.state === null ? null : stateStyles[message.state];
    if (!style) return;
    document.querySelectorAll("[data-live-state='domain:" + message.id + "']").forEach(function (badge) {
      badge.textContent = style[0];
      badge.className = "badge text-bg-" + style[1];
      // The parts around the badge now differ from what the server sent: their next copy goes in.
      for (let part = badge.closest("[data-live-topics]"); part; part = part.parentElement && part.parentElement.closest("[data-live-topics]")) {
        served.delete(part.id);
      }
    });
  }

  function onJoined() {
    retryMs = RETRY_MIN_MS;
    setIndicator("live", "Live");
    if (offlineTimer) { clearInterval(offlineTimer); offlineTimer = null; }
    // What happened between the page's rendering and now (or while we were away) came to no
    // socket: fetch the live parts once.
    refreshAll();
    if (everConnected) document.dispatchEvent(new CustomEvent("live:reconnected"));
    everConnected = true;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    // Not on "open": the server accepts the socket first and only then joins it to its messages
    // (events/consumers.py); its "hello" says it has joined. A change between the two reached no
    // socket, so the page counts itself live, and fetches its parts, only from the hello on.
    socket.addEventListener("message", function (event) {
      let message;
      try { message = JSON.parse(event.data); } catch (error) { console.error("live message", error); return; }
      if (message.type === "hello") { onJoined(); return; }
      try { onMessage(message); } catch (error) { console.error("live message", error); }
    });
    socket.addEventListener("close", function () {
      setIndicator("reconnecting", "Reconnecting…");
      if (!offlineTimer) offlineTimer = setInterval(refreshAll, OFFLINE_REFRESH_MS);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
  }

  function refreshOne(id) {
    const region = document.getElementById(id);
    if (region) schedule(region);
  }

  liveRegions().forEach(function (region) { if (region.id) served.set(region.id, comparable(region)); });
  document.body.addEventListener("operation-finished", onOperationFinished);
  document.addEventListener("pointerdown", onPointerDown, true);
  document.addEventListener("pointerup", onPointerReleased, true);
  document.addEventListener("pointercancel", onPointerReleased, true);
  window.addEventListener("blur", onPointerReleased);
  window.vmsiteLive = { refreshAll: refreshAll, refresh: refreshOne };
  if (liveRegions().length || indicator) connect();
})();
