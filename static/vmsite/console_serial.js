// The serial console page: xterm.js on a websocket to vmsite's serial console consumer. Output
// comes as binary frames, typing goes as text frames; status messages are JSON text frames.
(() => {
  const root = document.getElementById("serial-console");
  const statusBadge = document.getElementById("console-status");
  const message = document.getElementById("console-message");
  const terminal = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
  const fit = new FitAddon.FitAddon();
  const decoder = new TextDecoder();
  let socket = null;

  terminal.loadAddon(fit);
  terminal.open(document.getElementById("terminal"));
  fit.fit();
  window.addEventListener("resize", () => fit.fit());
  window.vmsiteTerminal = terminal; // for tests and the curious: the text on screen

  function setStatus(state, text, colour) {
    statusBadge.dataset.state = state;
    statusBadge.textContent = text;
    statusBadge.className = `badge text-bg-${colour}`;
  }

  function showMessage(text) {
    message.textContent = text;
    message.classList.toggle("d-none", !text);
  }

  function connect() {
    if (socket) socket.close();
    showMessage("");
    setStatus("connecting", "Connecting…", "info");
    const current = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${root.dataset.url}`);
    current.binaryType = "arraybuffer";
    current.onmessage = (event) => {
      if (typeof event.data !== "string") {
        terminal.write(decoder.decode(event.data, { stream: true }));
        return;
      }
      const status = JSON.parse(event.data);
      if (status.state === "connected") setStatus("connected", "Connected", "success");
      else showMessage(status.message);
      if (status.state === "taken_over") setStatus("taken_over", "Taken over", "warning");
    };
    current.onclose = () => {
      if (socket === current) socket = null;
      if (statusBadge.dataset.state !== "taken_over") setStatus("disconnected", "Disconnected", "secondary");
      if (message.classList.contains("d-none")) showMessage("The serial console closed. Press Reconnect to open it again.");
    };
    socket = current;
    terminal.focus();
  }

  terminal.onData((data) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(data); });
  document.getElementById("reconnect-button").addEventListener("click", connect);
  if (root.dataset.unavailable) setStatus("unavailable", "Not connected", "secondary");
  else connect();
})();
