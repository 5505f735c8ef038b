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
    status.textContent = text || `${window.vmsiteUnits.bytes(done)} of ${window.vmsiteUnits.bytes(total)} (${percent}%)`;
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
    const answer = await startSession(body);
    if (answer.errors) { showErrors(answer.errors); return; }
    showErrors([]);
    startButton.disabled = true;
    document.getElementById("upload-progress").classList.remove("d-none");
    cancelButton.classList.remove("d-none");
    send(file, answer.socket);
  });

  // The session's path ({socket}), or the reasons it did not start ({errors}): the form's own, or
  // in words when the request did not get through or the answer is not the form's (a proxy's page).
  async function startSession(body) {
    let response;
    try {
      response = await fetch(window.location.pathname, {method: "POST", body: new URLSearchParams(body),
        headers: {"X-CSRFToken": body.get("csrfmiddlewaretoken")}, credentials: "same-origin"});
    } catch (error) {
      return {errors: [`The upload did not start: the server could not be reached (${error.message}). Nothing was sent; try again.`]};
    }
    let answer = null;
    try { answer = await response.json(); } catch (error) { answer = null; }
    if (response.ok && answer && answer.socket) return answer;
    if (answer && answer.errors) return {errors: Object.values(answer.errors).flat()};
    return {errors: [`The upload did not start: the server answered ${response.status} ${response.statusText}. Nothing was sent; try again.`]};
  }

  cancelButton.addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({type: "cancel"}));
  });

  function send(file, path) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${window.location.host}${path}`);
    socket.binaryType = "arraybuffer";
    let acknowledged = 0, inFlight = 0, ended = false;
    let wakeUp = null;

    // One sender, so that chunks leave in order; it waits while the window is full. The file is
    // read a few chunks at a time, the next read starting while the current one is being sent.
    const readSize = Math.max(chunkSize, 8 * 1048576);
    const readAt = (start) => file.slice(start, Math.min(start + readSize, file.size)).arrayBuffer();

    async function sender() {
      let position = 0;
      let reading = readAt(0);
      while (position < file.size) {
        const buffer = new Uint8Array(await reading);
        position += buffer.length;
        reading = position < file.size ? readAt(position) : null;
        for (let start = 0; start < buffer.length; start += chunkSize) {
          while (inFlight >= windowSize && !ended) await new Promise((resolve) => { wakeUp = resolve; });
          if (ended || socket.readyState !== WebSocket.OPEN) return;
          inFlight += 1;
          socket.send(buffer.subarray(start, Math.min(start + chunkSize, buffer.length)));
        }
      }
    }

    function windowOpened() {
      if (wakeUp) { const resolve = wakeUp; wakeUp = null; resolve(); }
    }

    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") { setProgress(0, file.size); sender(); }
      else if (message.type === "progress") {
        acknowledged = message.received; inFlight -= 1;
        setProgress(acknowledged, file.size);
        windowOpened();
      } else if (message.type === "done") {
        ended = true;
        setProgress(file.size, file.size, `Uploaded ${file.size} bytes.`);
        document.getElementById("upload-sha256").textContent = message.sha256;
        document.getElementById("upload-volume-link").href = message.volume;
        document.getElementById("upload-result").classList.remove("d-none");
        finish(true, `Uploaded ${file.size} bytes.`);
      } else if (message.type === "error") {
        ended = true;
        windowOpened();
        finish(false, message.message);
      }
    });
    socket.addEventListener("close", (event) => {
      if (!ended) finish(false, `The connection closed (code ${event.code}) after ${acknowledged} bytes.`);
      ended = true;
      windowOpened();
    });
  }
})();
