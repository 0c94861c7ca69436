/* fascia-web: the pages' one script.  No framework and no build step: the
 * browser runs this file as it is.
 *
 * Every page but the login page keeps one model of the clinic, fed by one
 * EventSource on /api/events: the `snapshot` at each (re)connection
 * replaces the model whole, `state`, `alarm` and `room` events change it,
 * and each change schedules one render.  EventSource reconnects by itself
 * after a network error; when the server refuses the stream outright (it
 * restarted and the session is gone, say) it stays closed, so this file
 * then asks /api/me whether the session is still good and either opens a
 * new stream or goes to the login page.
 *
 * Rendering updates elements in place (a card, its buttons, its chamber
 * columns are made once) so that a button being pressed is never replaced
 * under the finger, and the names the tests and docs rely on stay put
 * (docs/console.md): .card[data-device][data-state], button[data-action],
 * [data-alarm], section.room[data-room][data-live], #alarms, #confirm with
 * [data-confirm="yes"], #message[data-code], #sessions rows
 * [data-session], #trace, form#login.
 *
 * The role of the user (GET /api/me) decides which command buttons exist;
 * the server checks the role again, and the daemon its own.  Every POST
 * carries the X-CSRF-Token that /api/me gave.
 */
"use strict";

(function () {
  const ACTIONS = ["start", "pause", "resume", "stop", "vent", "ack"];
  // What each role may send: lowering pressure is everyone's (docs/security.md).
  const ROLE_ACTIONS = { observer: ["vent"], operator: ACTIONS, admin: ACTIONS };
  const LABEL = { start: "Start", pause: "Pause", resume: "Resume", stop: "Stop",
                  vent: "Vent", ack: "Acknowledge" };
  // The states in which a command is normally taken.  Only a hint (the
  // button is quieter otherwise, never hidden or disabled): the daemon
  // decides, and its refusal is shown.
  const TAKES = { start: ["idle"], pause: ["running"], resume: ["paused"],
                  stop: ["running", "paused"], ack: ["fault"],
                  vent: ["idle", "running", "paused", "releasing", "fault"] };
  const CONFIRM = {
    start: "Start %p on %d for patient %r?",
    pause: "Pause the session on %d? The chambers deflate while paused.",
    resume: "Resume the session on %d?",
    stop: "Stop the session on %d? The chambers are released gently.",
    vent: "Vent %d now? Every chamber opens to the air at once.",
    ack: "Acknowledge the alarms of %d? Only once their cause is dealt with.",
  };
  const PRIORITY_RANK = { high: 0, medium: 1, low: 2 };
  const ALARM_LABEL = {
    overpressure: "Overpressure", deviation: "Pressure deviation", rate: "Pressure rising too fast",
    hold_time: "Held too long", session_time: "Session too long", stale: "Readings frozen",
    heartbeat: "Device ignores commands", comms: "Link lost", estop: "E-stop pressed",
    garment: "Garment off", sensor: "Sensor failure", device_fault: "Device fault",
    deadline: "Daemon overloaded", journal: "Record not written",
  };
  // The scale of every chamber bar: the compiled-in ceiling,
  // FASCIA_CEILING_MMHG (include/fascia/limits.h).  No pressure goes above.
  const CEILING_MMHG = 80;
  const TRACE_COLOURS = ["#1f5fbf", "#e07b00", "#2a9d3a", "#8e44ad",
                         "#8b5a2b", "#d63384", "#6c7a00", "#4d5563"];

  let me = null;                   // {name, role, csrf}
  const rooms = new Map();         // name -> {name, live, last_heard_ms, devices: Map}
  let roomOrder = [];
  let snapshotSeen = false;
  let renderPage = function () {};

  // ------------------------------------------------------------------
  // small helpers

  function $(sel, root) { return (root || document).querySelector(sel); }

  /* el("div", {class: "x", "data-a": "b"}, child, "text", ...) */
  function el(tag, attrs) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
        node.setAttribute(k, attrs[k] === true ? "" : String(attrs[k]));
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function num(v, digits) {
    if (!isNum(v)) return "?";
    const t = v.toFixed(digits);
    return /^-0(\.0*)?$/.test(t) ? t.slice(1) : t;      // no "-0.0"
  }

  function duration(s) {
    if (!isNum(s)) return "?";
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return h + " h " + m + " min";
    return m + " min" + (r ? " " + r + " s" : "");
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return s + " s";
    if (s < 7200) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h";
  }

  function clock(unixMs) {
    if (!isNum(unixMs)) return "?";
    const d = new Date(unixMs);
    const today = new Date();
    const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (d.toDateString() === today.toDateString()) return t;
    return d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" }) + " " + t;
  }

  function deviceHref(room, device) {
    return "device.html?room=" + encodeURIComponent(room) + "&device=" + encodeURIComponent(device);
  }

  function apiPath(room, rest) {
    return "api/" + encodeURIComponent(room) + "/" + rest;
  }

  function allowed(action) {
    return !!me && (ROLE_ACTIONS[me.role] || []).indexOf(action) >= 0;
  }

  function alarmLabel(a) {
    return (ALARM_LABEL[a.id] || a.id) + (a.chamber ? " (chamber " + a.chamber + ")" : "");
  }

  /* ": the daemon's message", unless it only says the label again */
  function alarmMessage(a) {
    if (!a.message) return "";
    const m = a.message.toLowerCase(), l = (ALARM_LABEL[a.id] || a.id).toLowerCase();
    return m === l ? "" : ": " + a.message;
  }

  // ------------------------------------------------------------------
  // HTTP

  function toLogin() {
    const next = location.pathname + location.search;
    location.href = "login.html" + (/\/(index\.html)?$/.test(location.pathname) ? ""
                                    : "?next=" + encodeURIComponent(next));
  }

  class Unauthenticated extends Error {}

  async function getJSON(path) {
    const r = await fetch(path, { credentials: "same-origin",
                                  headers: { Accept: "application/json" } });
    if (r.status === 401) { toLogin(); throw new Unauthenticated(path); }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body: body };
  }

  /* POST JSON with the CSRF token -> {status, body}; body null when the
   * answer was not JSON. */
  async function post(path, data) {
    const r = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
                 "X-CSRF-Token": me ? me.csrf : "" },
      body: JSON.stringify(data || {}),
    });
    if (r.status === 401) { toLogin(); throw new Unauthenticated(path); }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body: body };
  }

  async function loadMe() {
    const r = await getJSON("api/me");
    if (!r.body || !r.body.role) throw new Error("GET /api/me answered " + r.status);
    me = r.body;
    const who = $("#who"), role = $("#role");
    if (who) setText(who, me.name);
    if (role) setText(role, me.role);
    document.body.dataset.role = me.role;
  }

  // ------------------------------------------------------------------
  // #message: the last command's outcome, data-code its error code

  function showMessage(code, text) {
    const box = $("#message");
    if (!box) return;
    box.replaceChildren();
    box.dataset.code = code;
    if (!text) return;
    box.append(el("span", { class: "text" }, text));
    if (code !== "pending") {
      const close = el("button", { type: "button", class: "dismiss", "aria-label": "dismiss" }, "OK");
      close.addEventListener("click", function () { showMessage("", ""); });
      box.append(close);
    }
  }

  // ------------------------------------------------------------------
  // #confirm: every command is confirmed in the page before it is sent

  let confirmResolve = null;

  function askConfirm(text, yesLabel) {
    const box = $("#confirm");
    if (!box) return Promise.resolve(true);
    if (confirmResolve) confirmResolve(false);
    setText($("#confirm-text"), text);
    const yes = box.querySelector('[data-confirm="yes"]');
    setText(yes, yesLabel || "Confirm");
    box.hidden = false;
    box.querySelector('[data-confirm="no"]').focus();
    return new Promise(function (resolve) { confirmResolve = resolve; });
  }

  function closeConfirm(answer) {
    const box = $("#confirm");
    if (box) box.hidden = true;
    const r = confirmResolve;
    confirmResolve = null;
    if (r) r(answer);
  }

  function setupConfirm() {
    const box = $("#confirm");
    if (!box) return;
    box.querySelector('[data-confirm="yes"]').addEventListener("click", function () { closeConfirm(true); });
    box.querySelector('[data-confirm="no"]').addEventListener("click", function () { closeConfirm(false); });
    box.addEventListener("click", function (e) { if (e.target === box) closeConfirm(false); });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !box.hidden) closeConfirm(false);
    });
  }

  /* Confirm, then POST /api/ROOM/DEVICE/ACTION; the outcome in #message. */
  async function act(room, device, action, body) {
    const where = room + "/" + device;
    const text = CONFIRM[action].replace("%d", where)
      .replace("%p", body && body.profile ? body.profile : "")
      .replace("%r", body && body.patient ? body.patient : "");
    if (!await askConfirm(text, LABEL[action])) return null;
    showMessage("pending", LABEL[action] + " " + where + "\u2026");
    let r;
    try {
      r = await post(apiPath(room, encodeURIComponent(device) + "/" + action), body);
    } catch (e) {
      if (e instanceof Unauthenticated) return null;
      showMessage("network", LABEL[action] + " " + where + ": the console did not answer (" +
                  e.message + ")");
      return null;
    }
    const rep = r.body;
    if (rep && rep.ok === true) {
      const st = rep.result && rep.result.state;
      showMessage("ok", LABEL[action] + " " + where + ": done" + (st ? ", now " + st : ""));
    } else if (rep && rep.error) {
      const err = rep.error;
      showMessage(err.code || "error", LABEL[action] + " " + where + " refused (" +
                  (err.code || "error") + "): " +
                  (err.message || err.code) + (err.role ? " (needs the " + err.role + " role)" : ""));
      if (err.code === "csrf") loadMe().catch(function () {});
    } else {
      showMessage("error", LABEL[action] + " " + where + ": HTTP " + r.status);
    }
    return rep;
  }

  // ------------------------------------------------------------------
  // the model, fed by /api/events

  function roomOf(name) {
    let room = rooms.get(name);
    if (!room) {
      room = { name: name, live: true, last_heard_ms: null, devices: new Map() };
      rooms.set(name, room);
      roomOrder.push(name);
    }
    return room;
  }

  function applySnapshot(body) {
    rooms.clear();
    roomOrder = [];
    for (const r of (body && body.rooms) || []) {
      const room = roomOf(r.room);
      room.live = !!r.live;
      room.last_heard_ms = isNum(r.last_heard_ms) ? r.last_heard_ms : null;
      for (const st of r.devices || []) {
        if (st && typeof st.device === "string") room.devices.set(st.device, st);
      }
    }
    snapshotSeen = true;
    // how many snapshots this page has had: one per (re)connection
    document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
    schedule();
  }

  function applyState(d) {
    if (!d || !d.state || typeof d.state.device !== "string") return;
    const room = roomOf(d.room);
    const prev = room.devices.get(d.state.device);
    room.devices.set(d.state.device, d.state);
    room.live = true;               // it was heard just now
    room.last_heard_ms = Date.now();
    for (const f of stateWatchers) f(d.room, d.state, prev);
    schedule();
  }

  /* An alarm event changes the device's list at once; the state message
   * that follows it (published at once on a change of the list) is the
   * word that counts. */
  function applyAlarm(d) {
    if (!d || !d.alarm) return;
    const a = d.alarm, room = roomOf(d.room);
    const st = room.devices.get(a.device);
    if (!st) return;
    const list = (st.alarms || []).filter(function (x) {
      return !(x.id === a.alarm && (x.chamber || 0) === (a.chamber || 0));
    });
    if (a.kind === "raised") {
      list.push({ id: a.alarm, chamber: a.chamber || 0, priority: a.priority,
                  latched: true, present: true, since: a.time, message: a.message });
    }
    room.devices.set(a.device, Object.assign({}, st, { alarms: list }));
    schedule();
  }

  function applyRoom(d) {
    if (!d) return;
    const room = roomOf(d.room);
    room.live = !!d.live;
    if (isNum(d.last_heard_ms)) room.last_heard_ms = d.last_heard_ms;
    for (const f of roomWatchers) f(room);
    schedule();
  }

  const stateWatchers = [];
  const roomWatchers = [];

  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(function () { scheduled = false; render(); }, 0);
  }

  function render() {
    renderBanner();
    renderPage();
  }

  let source = null;
  function setConn(state, text) {
    document.body.dataset.conn = state;
    const c = $("#conn");
    if (!c) return;
    c.hidden = state === "open";
    setText(c, text || "");
  }

  function connect() {
    setConn("connecting", "Connecting to the console\u2026");
    const es = new EventSource("api/events");
    source = es;
    function on(kind, f) {
      es.addEventListener(kind, function (e) {
        let data;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        f(data);
      });
    }
    on("snapshot", applySnapshot);
    on("state", applyState);
    on("alarm", applyAlarm);
    on("room", applyRoom);
    es.addEventListener("open", function () { setConn("open", ""); });
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) {
        setConn("closed", "The console refused the live stream: checking the session\u2026");
        setTimeout(recover, 2000);
      } else {
        setConn("connecting", "Lost the console: reconnecting\u2026 (what is shown may be out of date)");
      }
    });
  }

  async function recover() {
    if (source) source.close();
    try {
      await loadMe();
    } catch (e) {
      if (e instanceof Unauthenticated) return;
      setConn("closed", "The console does not answer: retrying\u2026");
      setTimeout(recover, 3000);
      return;
    }
    connect();
  }

  // ------------------------------------------------------------------
  // the alarm banner at the top of every page

  const bannerNodes = new Map();     // key -> node

  function collectAlarms() {
    const out = [];
    for (const name of roomOrder) {
      const room = rooms.get(name);
      for (const [dev, st] of room.devices) {
        for (const a of st.alarms || []) out.push({ room: name, device: dev, a: a, live: room.live });
      }
    }
    out.sort(function (x, y) {
      const p = (PRIORITY_RANK[x.a.priority] ?? 3) - (PRIORITY_RANK[y.a.priority] ?? 3);
      return p || ((x.a.since || 0) - (y.a.since || 0));
    });
    return out;
  }

  function renderBanner() {
    const box = $("#alarms");
    if (!box) return;
    const want = new Map();
    for (const item of collectAlarms()) {
      want.set("a|" + item.room + "/" + item.device + "|" + item.a.id + "|" + (item.a.chamber || 0), item);
    }
    for (const name of roomOrder) {
      const room = rooms.get(name);
      if (!room.live) want.set("r|" + name, { silent: room });
    }
    for (const [key, node] of bannerNodes) {
      if (!want.has(key)) { node.remove(); bannerNodes.delete(key); }
    }
    let i = 0;
    for (const [key, item] of want) {
      let node = bannerNodes.get(key);
      if (!node) {
        node = item.silent ? bannerSilent(item.silent) : bannerAlarm(item);
        bannerNodes.set(key, node);
      }
      if (item.silent) updateSilent(node, item.silent); else updateBannerAlarm(node, item);
      if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null);
      i++;
    }
    const n = want.size - [...want.keys()].filter(function (k) { return k[0] === "r"; }).length;
    const title = document.body.dataset.title || document.title.replace(/^\(\d+ alarms?\) /, "");
    document.body.dataset.title = title;
    document.title = n ? "(" + n + (n === 1 ? " alarm) " : " alarms) ") + title : title;
  }

  function bannerAlarm(item) {
    const where = item.room + "/" + item.device;
    return el("div", { "data-alarm": item.a.id, "data-device": where },
              el("span", { class: "where" }, where),
              el("span", { class: "what" }),
              el("span", { class: "since" }),
              el("a", { href: deviceHref(item.room, item.device) }, "open"));
  }

  function updateBannerAlarm(node, item) {
    const a = item.a;
    setAttr(node, "data-priority", a.priority || "low");
    setAttr(node, "data-chamber", String(a.chamber || 0));
    setAttr(node, "data-present", String(!!a.present));
    setText(node.children[1], alarmLabel(a) + alarmMessage(a));
    setText(node.children[2], "since " + clock(a.since) +
            (a.present ? " \u00b7 cause present" : " \u00b7 cause gone: acknowledge") +
            (item.live ? "" : " \u00b7 room not answering"));
  }

  function bannerSilent(room) {
    return el("div", { class: "silent", "data-silent-room": room.name });
  }

  function silentText(room) {
    return room.last_heard_ms === null ? "not answering, not heard from since the console started"
      : "not answering, last heard " + ago(Date.now() - room.last_heard_ms) + " ago";
  }

  function updateSilent(node, room) {
    setText(node, "Room " + room.name + " " + silentText(room));
  }

  // ------------------------------------------------------------------
  // a device card

  function chamberColumn(i) {
    return el("div", { class: "chamber", "data-chamber": String(i + 1) },
              el("span", { class: "p" }),
              el("div", { class: "col" }, el("div", { class: "fill" }), el("div", { class: "sp" })),
              el("span", { class: "n" }, String(i + 1)),
              el("span", { class: "s" }));
  }

  function pct(v) {
    return (isNum(v) ? Math.min(100, Math.max(0, 100 * v / CEILING_MMHG)) : 0).toFixed(1) + "%";
  }

  /* The chamber columns of box for a state's chambers: made when their
   * number changes, updated in place otherwise. */
  function updateChambers(box, chambers) {
    chambers = chambers || [];
    if (box.dataset.n !== String(chambers.length)) {
      box.dataset.n = String(chambers.length);
      box.replaceChildren();
      if (!chambers.length) box.append(el("span", { class: "none" }, "no reading yet"));
      for (let i = 0; i < chambers.length; i++) box.append(chamberColumn(i));
    }
    for (let i = 0; i < chambers.length; i++) {
      const c = chambers[i], col = box.children[i];
      setAttr(col, "data-pressure", num(c.pressure, 1));
      setAttr(col, "data-setpoint", num(c.setpoint, 1));
      setAttr(col, "data-valve", c.valve || "");
      setText(col.children[0], num(c.pressure, 1));
      const bar = col.children[1];
      bar.children[0].style.height = pct(c.pressure);
      bar.children[1].style.bottom = pct(c.setpoint);
      setText(col.children[3], isNum(c.setpoint) ? "\u2192" + c.setpoint.toFixed(0) : "");
      col.title = "chamber " + (i + 1) + ": " + num(c.pressure, 1) + " mmHg, setpoint " +
        num(c.setpoint, 1) + ", valve " + (c.valve || "?");
    }
  }

  function alarmItem(a) {
    return el("li", { "data-alarm": a.id, "data-priority": a.priority || "low",
                      "data-chamber": String(a.chamber || 0), "data-present": String(!!a.present) },
              el("span", { class: "label" }, alarmLabel(a)),
              alarmMessage(a),
              el("span", { class: "state-of-cause" },
                 a.present ? " \u2014 cause present" : " \u2014 cause gone: acknowledge"));
  }

  function linkText(st) {
    const l = st.link || {};
    const parts = [];
    if (l.up) {
      parts.push("link up");
      if (isNum(l.rtt_us)) parts.push(l.rtt_us + " \u00b5s");
      parts.push((l.timeouts || 0) + " timeouts");
    } else {
      parts.push("link down" + (l.last_error ? ": " + l.last_error : ""));
    }
    if (isNum(st.supply)) parts.push("supply " + st.supply.toFixed(0) + " mmHg");
    return parts.join(" \u00b7 ");
  }

  function actionButton(action, onPress) {
    const b = el("button", { type: action === "start" ? "submit" : "button", "data-action": action },
                 LABEL[action]);
    if (onPress) b.addEventListener("click", onPress);
    return b;
  }

  /* A card for ROOM/DEVICE with the buttons of actions the user may send
   * (its update(state) changes it in place). */
  function makeCard(room, device, actions) {
    const card = el("div", { class: "card", "data-device": room + "/" + device, "data-state": "unknown" });
    const state = el("span", { class: "state" }, "unknown");
    card.append(el("header", null,
                   el("a", { class: "name", href: deviceHref(room, device) }, device), state));
    const sessionLine = el("div", { class: "session-line" });
    const progress = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0",
                                 "aria-valuemax": "100" }, el("div", { class: "fill" }));
    const progressText = el("div", { class: "progress-text" });
    const chambers = el("div", { class: "chambers" });
    const alarms = el("ul", { class: "alarms" });
    const link = el("div", { class: "link" });
    card.append(sessionLine, progress, progressText, chambers, alarms, link);
    const buttons = [];
    const mine = actions.filter(allowed);
    if (mine.length) {
      const box = el("div", { class: "actions" });
      for (const a of mine) {
        const b = actionButton(a, function () { act(room, device, a); });
        buttons.push(b);
        box.append(b);
      }
      card.append(box);
    }
    let alarmSig = null;
    function update(st) {
      setAttr(card, "data-state", st.state || "unknown");
      setText(state, st.state || "unknown");
      const s = st.session;
      if (s) {
        if (!sessionLine.querySelector(".step")) {
          sessionLine.replaceChildren(
            el("span", { class: "profile" }, "profile ", el("b")),
            el("span", { class: "step" }));
        }
        setText(sessionLine.querySelector(".profile b"), s.profile || "?");
        setText(sessionLine.querySelector(".step"),
                "step " + (s.step ?? "?") + " \u00b7 cycle " + (s.cycle ?? "?"));
        const total = (s.elapsed_s || 0) + (s.remaining_s || 0);
        const p = total > 0 ? Math.min(100, 100 * (s.elapsed_s || 0) / total) : 0;
        progress.hidden = false;
        progress.firstChild.style.width = p.toFixed(1) + "%";
        setAttr(progress, "aria-valuenow", p.toFixed(0));
        setText(progressText, duration(s.elapsed_s) + " of " + duration(total) + ", " +
                duration(s.remaining_s) + " left");
      } else {
        if (!sessionLine.querySelector(".none")) {
          sessionLine.replaceChildren(el("span", { class: "none" }, "no session"));
        }
        progress.hidden = true;
        setText(progressText, "");
      }
      updateChambers(chambers, st.chambers);
      const sig = JSON.stringify((st.alarms || []).map(function (a) {
        return [a.id, a.chamber, a.priority, a.present, a.message];
      }));
      if (sig !== alarmSig) {
        alarmSig = sig;
        alarms.replaceChildren.apply(alarms, (st.alarms || []).map(alarmItem));
      }
      setText(link, linkText(st));
      setAttr(link, "data-up", String(!!(st.link && st.link.up)));
      for (const b of buttons) hint(b, st.state);
    }
    return { el: card, update: update };
  }

  function hint(button, state) {
    const takes = TAKES[button.dataset.action] || [];
    button.classList.toggle("idle-for-now", takes.indexOf(state) < 0);
  }

  // ------------------------------------------------------------------
  // a room section

  function roomSection(name) {
    return el("section", { class: "room", "data-room": name, "data-live": "true" },
              el("header", null, el("h2", null, name), el("span", { class: "room-status" }, "live"),
                 el("span", { class: "hint count" })),
              el("div", { class: "cards" }));
  }

  function updateRoomStatus(section, room) {
    setAttr(section, "data-room", room.name);
    setAttr(section, "data-live", String(room.live));
    setText(section.querySelector(".room-status"), room.live ? "live" : silentText(room));
  }

  // ------------------------------------------------------------------
  // the clinic view

  function clinicPage() {
    const sections = new Map();   // room -> {el, cards: Map}
    const box = $("#rooms");
    renderPage = function () {
      if (!snapshotSeen) return;
      if (!roomOrder.length) {
        box.replaceChildren(el("p", { class: "empty" },
                               "No room is configured ([room NAME] in the console's configuration)."));
        sections.clear();
        return;
      }
      const placeholder = box.querySelector(":scope > .empty");
      if (placeholder) placeholder.remove();
      for (const [name, s] of sections) {
        if (!rooms.has(name)) { s.el.remove(); sections.delete(name); }
      }
      let i = 0;
      for (const name of roomOrder) {
        const room = rooms.get(name);
        let s = sections.get(name);
        if (!s) {
          s = { el: roomSection(name), cards: new Map() };
          sections.set(name, s);
        }
        if (box.children[i] !== s.el) box.insertBefore(s.el, box.children[i] || null);
        i++;
        updateRoomStatus(s.el, room);
        const grid = s.el.querySelector(".cards");
        for (const [dev, c] of s.cards) {
          if (!room.devices.has(dev)) { c.el.remove(); s.cards.delete(dev); }
        }
        let j = 0;
        for (const [dev, st] of room.devices) {
          let c = s.cards.get(dev);
          if (!c) { c = makeCard(name, dev, ["vent", "ack"]); s.cards.set(dev, c); }
          if (grid.children[j] !== c.el) grid.insertBefore(c.el, grid.children[j] || null);
          j++;
          c.update(st);
        }
        let empty = grid.querySelector(":scope > .empty");
        if (!room.devices.size && !empty) {
          grid.append(el("p", { class: "empty" }, room.live ? "no device" : "nothing heard yet"));
        } else if (room.devices.size && empty) {
          empty.remove();
        }
        setText(s.el.querySelector(".count"), room.devices.size === 1 ? "1 device"
                : room.devices.size + " devices");
      }
    };
  }

  // ------------------------------------------------------------------
  // the device page

  function devicePage() {
    const params = new URLSearchParams(location.search);
    const R = params.get("room") || "", D = params.get("device") || "";
    const section = $("#room");
    section.dataset.room = R;
    setText($("#title"), R + " / " + D);
    document.title = "fascia: " + R + "/" + D;
    let card = null;
    const cardBox = $("#device-card");
    const big = $("#chambers-big");
    const controls = [];

    // the commands the user may send
    const form = $("#start");
    if (allowed("start")) {
      const b = actionButton("start");
      controls.push(b);
      $("#start-actions").append(b);
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        const profile = form.elements.profile.value;
        const patient = form.elements.patient.value.trim();
        const note = form.elements.note.value.trim();
        if (!profile) {
          showMessage("bad_request", "Start: choose a profile (none is loaded: is the room answering?)");
          return;
        }
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(patient)) {
          showMessage("bad_request", "Start: the patient reference is 1 to 64 of A-Z a-z 0-9 . _ -");
          form.elements.patient.focus();
          return;
        }
        const body = { profile: profile, patient: patient };
        if (note) body.note = note;
        act(R, D, "start", body);
      });
    } else {
      form.hidden = true;
    }
    const actionsBox = $("#device-actions");
    for (const a of ["pause", "resume", "stop", "vent", "ack"]) {
      if (!allowed(a)) continue;
      const b = actionButton(a, function () { act(R, D, a); });
      controls.push(b);
      actionsBox.append(b);
    }
    setText($("#role-hint"), me.role === "observer"
      ? "As an observer you may vent (lowering pressure is everyone's to do); " +
        "treating needs the operator role."
      : "Each command is confirmed before it is sent; the daemon may still refuse it, and says why.");

    // profiles, from the room's daemon
    let profilesLoaded = false;
    async function loadProfiles() {
      if (!allowed("start")) return;
      const sel = form.elements.profile;
      let r;
      try { r = await getJSON(apiPath(R, "profiles")); } catch (e) { return; }
      const rep = r.body;
      if (!rep || !rep.ok) {
        if (!profilesLoaded) {
          sel.replaceChildren(el("option", { value: "" }, "(no profiles: " +
                                 ((rep && rep.error && rep.error.message) || "HTTP " + r.status) + ")"));
        }
        return;
      }
      const keep = sel.value;
      sel.replaceChildren();
      for (const p of rep.result.profiles || []) {
        const o = el("option", { value: p.name },
                     p.name + " \u2014 up to " + num(p.max_pressure_mmhg, 0) + " mmHg, " +
                     duration(p.duration_s) + ", " + p.chambers + " chambers");
        if (p.description) o.title = p.description;
        sel.append(o);
      }
      if (keep && [...sel.options].some(function (o) { return o.value === keep; })) sel.value = keep;
      profilesLoaded = sel.options.length > 0;
    }

    // the sessions of this device, from the record
    const tbody = $("#sessions tbody");
    let shown = null;       // the session id whose detail is shown
    async function loadHistory() {
      let r;
      try {
        r = await getJSON(apiPath(R, "history?device=" + encodeURIComponent(D) + "&limit=20"));
      } catch (e) { return; }
      const rep = r.body;
      const note = $("#sessions-note");
      if (!rep || !rep.ok) {
        setText(note, "The record could not be read: " +
                ((rep && rep.error && rep.error.message) || "HTTP " + r.status));
        return;
      }
      const sessions = rep.result.sessions || [];
      setText(note, sessions.length ? (rep.result.more ? "The 20 newest sessions." : "")
              : "No session recorded for this device yet.");
      tbody.replaceChildren.apply(tbody, sessions.map(sessionRow));
      markShown();
    }

    function sessionRow(s) {
      const running = s.end_reason === "running";
      const show = el("button", { type: "button" }, "Show");
      const row = el("tr", { "data-session": s.id, "data-end": s.end_reason },
                     el("td", null, clock(s.started)),
                     el("td", null, s.profile),
                     el("td", null, s.patient || "\u2014"),
                     el("td", null, s.operator || "\u2014"),
                     el("td", { class: "num" }, duration(s.delivered_s)),
                     el("td", null, running ? "running" : s.end_reason + " " + clock(s.ended)),
                     el("td", null, s.alarm || ""),
                     el("td", null, show));
      row.addEventListener("click", function () { loadSession(s.id); });
      return row;
    }

    function markShown() {
      for (const tr of tbody.children) {
        setAttr(tr, "aria-selected", String(tr.dataset.session === shown));
      }
    }

    let traceShown = null;
    async function loadSession(id) {
      shown = id;
      markShown();
      let r;
      try {
        r = await getJSON(apiPath(R, "session?session=" + encodeURIComponent(id) + "&trace=1"));
      } catch (e) { return; }
      const rep = r.body;
      const detail = $("#session-detail");
      detail.hidden = false;
      if (!rep || !rep.ok) {
        setText($("#session-title"), "Session " + id);
        setText($("#trace-note"), "The session could not be read: " +
                ((rep && rep.error && rep.error.message) || "HTTP " + r.status));
        return;
      }
      const s = rep.result.session;
      detail.dataset.session = s.id;
      setText($("#session-title"), "Session " + s.id);
      const dl = $("#session-summary");
      dl.replaceChildren();
      const rows = [
        ["profile", s.profile], ["patient", s.patient || "\u2014"], ["started by", s.operator || "\u2014"],
        ["note", s.note || "\u2014"], ["started", clock(s.started)],
        ["ended", s.end_reason === "running" ? "running" : clock(s.ended) + " (" + s.end_reason +
         (s.alarm ? ": " + s.alarm : "") + ")"],
        ["delivered", duration(s.delivered_s) + " of " + duration(s.planned_s) + " planned" +
         (s.paused_s ? ", paused " + duration(s.paused_s) : "")],
      ];
      for (const [k, v] of rows) dl.append(el("dt", null, k), el("dd", null, v));
      const dose = $("#dose tbody");
      dose.replaceChildren.apply(dose, (s.chambers || []).map(function (c) {
        return el("tr", { "data-chamber": String(c.chamber) },
                  el("td", null, String(c.chamber)),
                  el("td", { class: "num" }, num(c.max_mmhg, 1)),
                  el("td", { class: "num" }, num(c.mean_mmhg, 1)),
                  el("td", { class: "num" }, num(c.mmhg_s, 0)),
                  el("td", { class: "num" }, num(c.above_30_s, 1)));
      }));
      if (!(s.chambers || []).length) {
        dose.append(el("tr", null, el("td", { colspan: "5" }, "no sample recorded")));
      }
      traceShown = { trace: s.trace, log: s.log || [], started: s.started };
      drawTrace($("#trace"), traceShown);
      const log = $("#session-log");
      log.replaceChildren.apply(log, (s.log || []).map(function (e) {
        return el("li", { "data-kind": e.kind }, clock(e.time) + " " + logText(e));
      }));
    }
    window.addEventListener("resize", function () {
      if (traceShown) drawTrace($("#trace"), traceShown);
    });

    // a session's start or end reloads the list (and the detail shown)
    let lastSession = null, lastState = null;
    const ACTIVE = ["running", "paused", "releasing"];
    stateWatchers.push(function (room, st) {
      if (room !== R || st.device !== D) return;
      const sid = st.session ? st.session.id : null;
      const changed = sid !== lastSession ||
        (ACTIVE.indexOf(st.state) >= 0) !== (ACTIVE.indexOf(lastState) >= 0);
      const first = lastState === null;
      lastSession = sid;
      lastState = st.state;
      if (changed && !first) {
        // the record closes the session at rest and commits within
        // milliseconds; ask again a little later for its final figures
        const again = function () {
          loadHistory();
          if (shown) loadSession(shown);
        };
        again();
        setTimeout(again, 1500);
      }
    });
    roomWatchers.push(function (room) {
      if (room.name !== R || !room.live) return;
      if (!profilesLoaded) loadProfiles();
      loadHistory();
    });

    renderPage = function () {
      if (!snapshotSeen) return;
      const room = rooms.get(R);
      if (!room) {
        setAttr(section, "data-live", "false");
        setText(section.querySelector(".room-status"), "no room " + R + " in the console's configuration");
        return;
      }
      updateRoomStatus(section, room);
      const st = room.devices.get(D);
      if (!st) {
        if (!cardBox.querySelector(".empty")) {
          cardBox.replaceChildren(el("p", { class: "empty" },
                                     "No device " + D + " heard in room " + R + "."));
        }
        return;
      }
      if (!card) {
        card = makeCard(R, D, []);
        cardBox.replaceChildren(card.el);
      }
      card.update(st);
      updateChambers(big, st.chambers);
      for (const b of controls) hint(b, st.state);
    };

    loadProfiles();
    loadHistory();
  }

  function logText(e) {
    switch (e.kind) {
    case "alarm":
      return "alarm " + e.alarm + " " + e.event + (e.chamber ? " (chamber " + e.chamber + ")" : "") +
        (e.message ? ": " + e.message : "");
    case "command":
      return e.event + " by " + (e.as ? e.as + " (through " + (e.by || "?") + ")" : e.by || "?") +
        ": " + e.outcome + (e.message ? " \u2014 " + e.message : "");
    case "state":
      if (e.event === "changed") {
        return "state " + e.from + " \u2192 " + e.to + (e.cause ? " (" + e.cause + ")" : "");
      }
      return "session " + (e.message || e.event);
    default:
      return e.kind + " " + (e.event || "") + (e.message ? ": " + e.message : "");
    }
  }

  // ------------------------------------------------------------------
  // the trace chart: pressure (solid) and setpoint (dashed) per chamber,
  // alarms as red lines

  function niceStep(span, most) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    for (const s of steps) if (span / s <= most) return s;
    return 7200;
  }

  function drawTrace(canvas, shown) {
    const tr = shown.trace || {};
    const P = tr.pressure || [], S = tr.setpoint || [];
    const hz = tr.hz || 1;
    let nch = 0;
    for (const row of P) if (row && row.length > nch) nch = row.length;
    // the chambers the session used: those ever set or pressed above 0.5
    const used = [];
    for (let c = 0; c < nch; c++) {
      let any = false;
      for (let k = 0; k < P.length && !any; k++) {
        if ((P[k] && P[k][c] > 0.5) || (S[k] && S[k][c] > 0.5)) any = true;
      }
      if (any) used.push(c);
    }
    canvas.dataset.samples = String(P.length);
    canvas.dataset.chambers = String(used.length);
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 900, h = canvas.clientHeight || 280;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const note = $("#trace-note"), legend = $("#trace-legend");
    legend.replaceChildren();
    if (!P.length) {
      g.fillStyle = "#5b6470";
      g.font = "16px system-ui, sans-serif";
      g.fillText("no trace recorded for this session", 20, h / 2);
      setText(note, tr.hz === 0 ? "The daemon keeps no trace (trace_hz = 0)." :
              "No sample (kept for trace_keep_days after the session).");
      return;
    }
    let ymax = 10;
    for (const rows of [P, S]) {
      for (const row of rows) for (const v of row || []) if (isNum(v) && v > ymax) ymax = v;
    }
    ymax = Math.min(CEILING_MMHG, Math.ceil(ymax * 1.1 / 10) * 10);
    // the time axis: the samples, and the alarms raised up to a second
    // after the last one (the alarm that ended the session comes after it)
    const t0 = isNum(tr.t0) ? tr.t0 : shown.started;
    const raised = shown.log.filter(function (e) {
      return e.kind === "alarm" && e.event === "raised" && isNum(e.time);
    }).map(function (e) { return { t: (e.time - t0) / 1000, id: e.alarm }; });
    let T = Math.max((P.length - 1) / hz, 1);
    for (const a of raised) if (a.t > T && a.t <= T + 1) T = a.t;
    const L = 46, Rm = 12, Tm = 10, B = 30;
    const x = function (t) { return L + (w - L - Rm) * t / T; };
    const y = function (v) { return Tm + (h - Tm - B) * (1 - v / ymax); };
    g.font = "12px system-ui, sans-serif";
    g.lineWidth = 1;
    g.strokeStyle = "#e1e4e8";
    g.fillStyle = "#5b6470";
    const ystep = ymax > 60 ? 20 : 10;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let v = 0; v <= ymax; v += ystep) {
      g.beginPath(); g.moveTo(L, y(v)); g.lineTo(w - Rm, y(v)); g.stroke();
      g.fillText(String(v), L - 6, y(v));
    }
    g.save();
    g.translate(12, Tm + (h - Tm - B) / 2);
    g.rotate(-Math.PI / 2);
    g.textAlign = "center";
    g.fillText("mmHg", 0, 0);
    g.restore();
    const xstep = niceStep(T, 8);
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let t = 0; t <= T + 1e-9; t += xstep) {
      g.beginPath(); g.moveTo(x(t), Tm); g.lineTo(x(t), h - B); g.stroke();
      const label = T >= 120 ? Math.floor(t / 60) + ":" + String(Math.round(t % 60)).padStart(2, "0")
        : t + " s";
      g.fillText(label, x(t), h - B + 6);
    }
    // alarms raised during the session: a red line each, named
    g.strokeStyle = "#d0021b";
    g.lineWidth = 2;
    g.fillStyle = "#d0021b";
    g.textBaseline = "top";
    for (const a of raised) {
      if (a.t < 0 || a.t > T) continue;
      g.beginPath(); g.moveTo(x(a.t), Tm); g.lineTo(x(a.t), h - B); g.stroke();
      const right = x(a.t) > w - 80;
      g.textAlign = right ? "right" : "left";
      g.fillText(a.id, x(a.t) + (right ? -4 : 4), Tm + 2);
    }
    canvas.dataset.alarms = String(raised.filter(function (a) { return a.t >= 0 && a.t <= T; }).length);
    function line(rows, c, dash, width) {
      g.setLineDash(dash);
      g.lineWidth = width;
      g.beginPath();
      let pen = false;
      for (let k = 0; k < rows.length; k++) {
        const v = rows[k] ? rows[k][c] : null;
        if (!isNum(v)) { pen = false; continue; }
        const px = x(k / hz), py = y(Math.min(v, ymax));
        if (pen) g.lineTo(px, py); else g.moveTo(px, py);
        pen = true;
      }
      g.stroke();
    }
    for (const c of used) {
      g.strokeStyle = TRACE_COLOURS[c % TRACE_COLOURS.length];
      line(S, c, [6, 4], 1.5);
      line(P, c, [], 2.5);
    }
    g.setLineDash([]);
    for (const c of used) {
      const item = el("span", null, "chamber " + (c + 1));
      item.style.setProperty("--swatch", TRACE_COLOURS[c % TRACE_COLOURS.length]);
      legend.append(item);
    }
    setText(note, P.length + " samples at " + hz + " Hz; solid: pressure, dashed: setpoint" +
            (used.length < nch ? "; chambers never above 0.5 mmHg are left out" : "") + ".");
  }

  // ------------------------------------------------------------------
  // the login page

  function loginPage() {
    const form = $("#login");
    const next = new URLSearchParams(location.search).get("next");
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      showMessage("pending", "Logging in\u2026");
      let r;
      try {
        r = await fetch(form.getAttribute("action"), {
          method: "POST", credentials: "same-origin", redirect: "follow",
          headers: { "Content-Type": "application/x-www-form-urlencoded",
                     Accept: "application/json" },
          body: new URLSearchParams(new FormData(form)).toString(),
        });
      } catch (err) {
        button.disabled = false;
        showMessage("network", "The console did not answer: " + err.message);
        return;
      }
      button.disabled = false;
      if (r.ok) {
        // a safe place to go back to: a path of this site, not another's
        location.href = next && /^\/[^/\\]/.test(next) ? next : "./";
        return;
      }
      let code = null, message = null;
      try {
        const body = await r.clone().json();
        if (body && body.error) { code = body.error.code; message = body.error.message; }
      } catch (err) { /* not JSON: the status says it */ }
      if (r.status === 429) {
        const s = parseInt(r.headers.get("Retry-After") || "", 10);
        showMessage(code || "rate_limited", "Too many failed attempts: try again " +
                    (isNum(s) ? "in " + s + " s." : "later."));
      } else if (r.status === 401) {
        showMessage(code || "unauthenticated", "Wrong name or password.");
        form.elements.password.value = "";
        form.elements.password.focus();
      } else {
        showMessage(code || "error", message || "Logging in failed: HTTP " + r.status + ".");
      }
    });
  }

  // ------------------------------------------------------------------

  function setupLogout() {
    const b = $("#logout");
    if (!b) return;
    b.addEventListener("click", async function () {
      try { await post("logout", {}); } catch (e) { /* going anyway */ }
      if (source) source.close();
      location.href = "login.html";
    });
  }

  // the "last heard N s ago" texts move on by themselves
  function tick() {
    for (const name of roomOrder) {
      if (!rooms.get(name).live) { schedule(); return; }
    }
  }

  async function main() {
    const page = document.body.dataset.page;
    if (page === "login") { loginPage(); return; }
    setupConfirm();
    try {
      await loadMe();
    } catch (e) {
      if (!(e instanceof Unauthenticated)) {
        setConn("closed", "The console does not answer (" + e.message + "): retrying\u2026");
        setTimeout(function () { location.reload(); }, 3000);
      }
      return;
    }
    setupLogout();
    if (page === "clinic") clinicPage();
    else if (page === "device") devicePage();
    connect();
    setInterval(tick, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
