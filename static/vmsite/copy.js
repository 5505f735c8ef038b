// Copy buttons: data-copy names the element whose text (or value) goes to the clipboard. One listener
// on the document, so that buttons in parts of a page that live updates replace keep working.
(function () {
  async function copy(button) {
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
  }
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (button) copy(button);
  });
})();
