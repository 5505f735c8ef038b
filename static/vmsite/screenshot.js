// The VM page's screen thumbnail: a websocket sends a PNG every few seconds while the page is
// visible; hidden pages close it, so VMs nobody looks at are never asked for screenshots.
(() => {
  const figure = document.getElementById("domain-screenshot");
  if (!figure) return;
  const image = figure.querySelector("img");
  const caption = figure.querySelector("figcaption");
  let socket = null;
  let lastUrl = null;

  function open() {
    if (socket || document.visibilityState !== "visible") return;
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${figure.dataset.url}`);
    socket.binaryType = "blob";
    socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        const status = JSON.parse(event.data);
        caption.textContent = status.message;
        if (status.state === "off") image.classList.add("d-none");  // no stale screen of a VM that is off
        return;
      }
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = URL.createObjectURL(event.data);
      image.src = lastUrl;
      image.classList.remove("d-none");
      caption.textContent = "Screen, refreshed while this page is open.";
      image.dataset.updated = String(Date.now());
    };
    socket.onclose = () => { socket = null; };
  }

  function close() {
    if (socket) socket.close();
    socket = null;
  }

  document.addEventListener("visibilitychange", () => (document.visibilityState === "visible" ? open() : close()));
  window.addEventListener("pagehide", close);
  open();
})();
