// "Select all" for the bulk actions of the VM list (delegated: live updates replace the table).
(function () {
  document.addEventListener("change", function (event) {
    if (event.target.id !== "select-all-domains") return;
    document.querySelectorAll("input[name=domains]").forEach(function (box) { box.checked = event.target.checked; });
  });
})();
