// The new-VM form shows only the fields that the choices above them make relevant.
(function () {
  const form = document.getElementById("create-form");
  if (!form) return;
  const value = (name) => (form.elements[name].type === "checkbox" ? form.elements[name].checked : form.elements[name].value);
  const rules = {
    disk_pool: () => value("disk_source") !== "none",
    disk_size_gib: () => value("disk_source") === "new",
    disk_format: () => value("disk_source") === "new",
    disk_volume: () => value("disk_source") === "existing",
    disk_bus: () => value("disk_source") !== "none",
    disk_cache: () => value("disk_source") !== "none",
    cpu_model: () => value("cpu_mode") === "custom",
    nic_network: () => value("nic_kind") === "network",
    nic_bridge: () => value("nic_kind") === "bridge",
    nic_direct_dev: () => value("nic_kind") === "direct",
    nic_direct_mode: () => value("nic_kind") === "direct",
    nic_model: () => value("nic_kind") !== "none",
    nic_mac: () => value("nic_kind") !== "none",
    nic_boot_rom: () => value("nic_kind") !== "none",
    ci_hostname: () => value("cloud_init"),
    ci_user: () => value("cloud_init"),
    ci_ssh_keys: () => value("cloud_init"),
    ci_password: () => value("cloud_init"),
    ci_user_data: () => value("cloud_init"),
  };
  function update() {
    Object.entries(rules).forEach(([name, shown]) => {
      const row = document.getElementById("row-" + name);
      if (row) row.hidden = !shown();
    });
  }
  form.addEventListener("change", update);
  update();
})();
