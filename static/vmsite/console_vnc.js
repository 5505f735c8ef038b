// The VNC console page: asks vmsite for a one-use token (POST), then opens noVNC through the
// console proxy. The page never chooses a host or a port; the token says everything.
const root = document.getElementById("vnc-console");
const statusBadge = document.getElementById("console-status");
const message = document.getElementById("console-message");
const screen = document.getElementById("vnc-screen");
const controls = ["ctrl-alt-del-button", "keys-button", "paste-send"].map((id) => document.getElementById(id));
let RFB = null;
const KEYSYMS = {
  ctrl: [0xffe3, "ControlLeft"], alt: [0xffe9, "AltLeft"], super: [0xffeb, "MetaLeft"], tab: [0xff09, "Tab"],
  escape: [0xff1b, "Escape"], backspace: [0xff08, "Backspace"], sysrq: [0xff61, "PrintScreen"],
  f1: [0xffbe, "F1"], f2: [0xffbf, "F2"], f4: [0xffc1, "F4"], f7: [0xffc4, "F7"],
};
let rfb = null;

function setStatus(state, text, colour) {
  statusBadge.dataset.state = state;
  statusBadge.textContent = text;
  statusBadge.className = `badge text-bg-${colour}`;
  controls.forEach((button) => { button.disabled = state !== "connected"; });
}

function showMessage(text) {
  message.textContent = text;
  message.classList.toggle("d-none", !text);
}

// CONSOLE_PROXY_URL: a whole URL, or a path on the page's own origin (behind nginx: /websockify);
// unset, the page's host on CONSOLE_PROXY_PORT (`make run`).
function proxyUrl(token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const configured = root.dataset.proxyUrl;
  const base = configured.startsWith("/") ? `${scheme}://${location.host}${configured}`
    : configured || `${scheme}://${location.hostname}:${root.dataset.proxyPort}/`;
  return `${base}?token=${encodeURIComponent(token)}`;
}

async function connect() {
  if (rfb) { rfb.disconnect(); rfb = null; }
  showMessage("");
  setStatus("connecting", "Connecting…", "info");
  let response;
  try {
    response = await fetch(root.dataset.tokenUrl, {
      method: "POST", headers: { "X-CSRFToken": root.dataset.csrf }, credentials: "same-origin",
    });
  } catch (error) {
    setStatus("disconnected", "Not connected", "secondary");
    showMessage(`vmsite did not answer: ${error}`);
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 410 && body.moved_to && body.moved_to !== root.dataset.tokenUrl) {
    root.dataset.tokenUrl = body.moved_to;  // the VM is known under another id now: follow it
    return connect();
  }
  if (!response.ok) {
    setStatus("unavailable", "Not connected", "secondary");
    showMessage(body.error || `vmsite refused the console (${response.status}).`);
    return;
  }
  // Our own socket, handed to noVNC, so that the proxy's reason for closing can be shown.
  const socket = new WebSocket(proxyUrl(body.token), ["binary"]);
  let closing = null;
  socket.addEventListener("close", (event) => { closing = event; });
  rfb = new RFB(screen, socket, { shared: true });
  rfb.scaleViewport = document.getElementById("scale-fit").checked;
  rfb.resizeSession = false;
  rfb.addEventListener("connect", () => { setStatus("connected", "Connected", "success"); rfb.focus(); });
  rfb.addEventListener("disconnect", (event) => {
    rfb = null;
    setStatus("disconnected", "Disconnected", "secondary");
    if (closing && closing.code >= 4000 && closing.reason) showMessage(closing.reason);
    else if (event.detail.clean) showMessage("The console closed. Press Reconnect to open it again.");
    else showMessage("The console connection was lost or refused (the VM may be off or gone). Press Reconnect to try again.");
  });
  rfb.addEventListener("credentialsrequired", () => {
    const password = window.prompt("This VM's console asks for a password:");
    if (password !== null) rfb.sendCredentials({ password });
  });
  rfb.addEventListener("securityfailure", (event) => showMessage(`Console security failure: ${event.detail.reason}`));
}

function sendCombo(names) {
  if (!rfb) return;
  const keys = names.split(" ").map((name) => KEYSYMS[name]);
  keys.forEach(([keysym, code]) => rfb.sendKey(keysym, code, true));
  keys.slice().reverse().forEach(([keysym, code]) => rfb.sendKey(keysym, code, false));
  rfb.focus();
}

function typeText(text) {
  if (!rfb) return;
  for (const character of text.replace(/\r\n?/g, "\n")) {
    if (character === "\n") rfb.sendKey(0xff0d, "Enter");
    else if (character === "\t") rfb.sendKey(0xff09, "Tab");
    else {
      const point = character.codePointAt(0);
      // X keysyms: Latin-1 maps to itself, the rest of Unicode to 0x01000000 + code point.
      rfb.sendKey(point < 0x100 ? point : 0x01000000 + point, null);
    }
  }
  rfb.focus();
}

document.querySelectorAll("input[name=scaling]").forEach((input) => input.addEventListener("change", () => {
  if (!rfb) return;
  rfb.scaleViewport = document.getElementById("scale-fit").checked;
  rfb.clipViewport = false;
}));
document.getElementById("fullscreen-button").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen(); else screen.requestFullscreen();
});
document.getElementById("ctrl-alt-del-button").addEventListener("click", () => { if (rfb) rfb.sendCtrlAltDel(); });
document.getElementById("key-combos").addEventListener("click", (event) => {
  const combo = event.target.closest("[data-keys]");
  if (combo) sendCombo(combo.dataset.keys);
});
document.getElementById("paste-send").addEventListener("click", () => {
  const area = document.getElementById("paste-text");
  typeText(area.value);
  area.value = "";
});
document.getElementById("reconnect-button").addEventListener("click", connect);

// noVNC is some forty modules: one request lost on a busy server must not cost the console.
async function loadRFB(attempts = 3) {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await import(root.dataset.rfbModule)).default;
    } catch (error) {
      if (attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

setStatus("loading", "Loading noVNC…", "info");
try {
  RFB = await loadRFB();
  if (root.dataset.unavailable) setStatus("unavailable", "Not connected", "secondary");
  else connect();
} catch (error) {
  setStatus("error", "Not connected", "danger");
  showMessage(`The console page could not load noVNC: ${error}`);
}
