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
