// Copy buttons: data-copy names the element whose text (or value) goes to the clipboard.
(function () {
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", async function () {
      const source = document.querySelector(button.dataset.copy);
      if (!source) return;
      const text = (source.value !== undefined ? source.value : source.textContent).trim();
      try {
        await navigator.clipboard.writeText(text);
      } catch (error) { // no clipboard API (a page not served over HTTPS or localhost): select it instead
        const range = document.createRange();
        range.selectNodeContents(source);
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        if (source.select) source.select();
        document.execCommand("copy");
      }
      button.dataset.copied = "1";
      button.lastChild.textContent = " Copied";
    });
  });
})();

// Show only the fields the chosen transport needs.
(function () {
  const form = document.getElementById("host-form");
  const transport = document.getElementById("id_transport");
  if (!form || !transport) return;
  function update() {
    document.querySelectorAll("[data-transports]").forEach(function (element) {
      const wanted = element.dataset.transports;
      element.hidden = wanted !== "" && !wanted.split(" ").includes(transport.value);
    });
  }
  transport.addEventListener("change", update);
  update();
})();
