// Upload a file into a volume: a short POST starts the session, then the file goes over a
// websocket in chunks, a few in flight, each acknowledged once libvirt has it (see storage/uploads.py).
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const chunkSize = Number(form.dataset.chunk);
  const windowSize = Number(form.dataset.window);
  const fileInput = document.getElementById("id_file");
  const errors = document.getElementById("upload-errors");
  const startButton = document.getElementById("start-upload");
  const cancelButton = document.getElementById("cancel-upload");
  const bar = document.getElementById("upload-bar");
  const status = document.getElementById("upload-status");
  let socket = null;

  function showErrors(list) {
    errors.textContent = list.join(" ");
    errors.classList.toggle("d-none", list.length === 0);
  }

  function setProgress(done, total, text) {
    const percent = total ? Math.floor((100 * done) / total) : 0;
    bar.style.width = percent + "%";
    status.textContent = text || `${(done / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MiB (${percent}%)`;
  }

  function finish(ok, text) {
    bar.classList.remove("progress-bar-animated", "progress-bar-striped");
    bar.classList.add(ok ? "bg-success" : "bg-danger");
    status.textContent = text;
    cancelButton.classList.add("d-none");
    startButton.disabled = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) { showErrors(["Choose a file first."]); return; }
    const body = new FormData(form);
    body.set("size", String(file.size));
    const response = await fetch(window.location.pathname, {method: "POST", body: new URLSearchParams(body),
      headers: {"X-CSRFToken": body.get("csrfmiddlewaretoken")}, credentials: "same-origin"});
    const answer = await response.json();
    if (!response.ok) { showErrors(Object.values(answer.errors || {}).flat()); return; }
    showErrors([]);
    startButton.disabled = true;
    document.getElementById("upload-progress").classList.remove("d-none");
    cancelButton.classList.remove("d-none");
    send(file, answer.socket);
  });

  cancelButton.addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({type: "cancel"}));
  });

  function send(file, path) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${window.location.host}${path}`);
    socket.binaryType = "arraybuffer";
    let offset = 0, acknowledged = 0, inFlight = 0, ended = false;

    async function pump() {
      while (inFlight < windowSize && offset < file.size && socket.readyState === WebSocket.OPEN) {
        const end = Math.min(offset + chunkSize, file.size);
        const slice = file.slice(offset, end);
        offset = end;
        inFlight += 1;
        socket.send(await slice.arrayBuffer());
      }
    }

    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") { setProgress(0, file.size); pump(); }
      else if (message.type === "progress") {
        acknowledged = message.received; inFlight -= 1;
        setProgress(acknowledged, file.size);
        pump();
      } else if (message.type === "done") {
        ended = true;
        setProgress(file.size, file.size, `Uploaded ${file.size} bytes.`);
        document.getElementById("upload-sha256").textContent = message.sha256;
        document.getElementById("upload-result").classList.remove("d-none");
        finish(true, `Uploaded ${file.size} bytes.`);
      } else if (message.type === "error") {
        ended = true;
        finish(false, message.message);
      }
    });
    socket.addEventListener("close", (event) => {
      if (!ended) finish(false, `The connection closed (code ${event.code}) after ${acknowledged} bytes.`);
    });
  }
})();
