// "Select all" for the bulk actions of the VM list.
(function () {
  const all = document.getElementById("select-all-domains");
  if (!all) return;
  all.addEventListener("change", function () {
    document.querySelectorAll("input[name=domains]").forEach(function (box) { box.checked = all.checked; });
  });
})();
