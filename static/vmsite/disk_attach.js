// Add disk: show the volume list for "an existing volume", the pool, name, size and format for "a new volume".
(function () {
  const form = document.getElementById("config-form");
  if (!form || !form.querySelector("input[name=source]")) return;
  const NEW_ONLY = ["pool", "new_name", "new_size", "new_format"];
  function update() {
    const chosen = form.querySelector("input[name=source]:checked");
    const isNew = chosen !== null && chosen.value === "new";
    NEW_ONLY.forEach(function (name) {
      const row = document.getElementById("row-" + name);
      if (row) row.hidden = !isNew;
    });
    const volume = document.getElementById("row-volume");
    if (volume) volume.hidden = isNew;
  }
  form.querySelectorAll("input[name=source]").forEach(function (choice) {
    choice.addEventListener("change", update);
  });
  update();
})();
