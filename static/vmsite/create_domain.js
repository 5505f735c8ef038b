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

  // A host with no pool or network: the offer queues the host's default one, waits for its
  // operation, then adds it to the selects in place, so nothing typed in the form is lost.
  const POLL_MS = 2000;
  const DEFAULT_NAME = "default"; // what the offer makes or starts (domains/host_defaults.py)
  const POLL_LIMIT = 150;
  const OFFERED = {
    pool: { lists: "pools", selects: ["disk_pool", "cdrom_pool"], chosen: "disk_pool", kind: "disk_source", on: "new", none: "none" },
    network: { lists: "networks", selects: ["nic_network"], chosen: "nic_network", kind: "nic_kind", on: "network", none: "none" },
  };

  function say(offer, text, link) {
    const status = offer.querySelector(".offer-status");
    status.textContent = text;
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.textContent = link.text;
      status.append(" ", anchor);
    }
  }

  function offerChoices(select, names) {
    const kept = select.value;
    const present = new Set(Array.from(select.options).map((option) => option.value));
    names.filter((name) => !present.has(name)).forEach((name) => select.add(new Option(name, name)));
    select.value = kept;
  }

  function adopt(what, choices) {
    const offered = OFFERED[what];
    const names = choices[offered.lists];
    offered.selects.forEach((name) => offerChoices(form.elements[name], names));
    const chosen = form.elements[offered.chosen];
    if (!chosen.value && names.length) chosen.value = names.includes(DEFAULT_NAME) ? DEFAULT_NAME : names[0];
    if (form.elements[offered.kind].value === offered.none) form.elements[offered.kind].value = offered.on;
    update();
  }

  // The next look at the operation: when the live socket says it moved (live.js), or after POLL_MS.
  function moved(operationId) {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); document.removeEventListener("live:message", onMessage); resolve(); };
      const onMessage = (event) => { if (event.detail.type === "operation" && event.detail.id === operationId) done(); };
      const timer = setTimeout(done, POLL_MS);
      document.addEventListener("live:message", onMessage);
    });
  }

  async function waitFor(what, offer, operation) {
    for (let tries = 0; tries < POLL_LIMIT; tries += 1) {
      await moved(operation.operation);
      let choices;
      try {
        const response = await fetch(form.dataset.choicesUrl + "?operation=" + operation.operation, { credentials: "same-origin" });
        if (!response.ok) continue;
        choices = await response.json();
      } catch (error) {
        continue; // the server is away for a moment: ask again
      }
      if (!choices.operation || !choices.operation.finished) continue;
      if (choices.operation.state !== "succeeded") {
        say(offer, "It failed: " + (choices.operation.error || choices.operation.state) + ".", { href: operation.url, text: "Details" });
        return false;
      }
      // The operation wrote the row, but the listener's read of the host's pools and networks, begun
      // before the start, may store it stopped for a moment: ask again until it is listed.
      if (!choices[OFFERED[what].lists].includes(DEFAULT_NAME)) continue;
      adopt(what, choices);
      offer.classList.replace("alert-warning", "alert-success");
      say(offer, "Done: the default " + what + " is ready and chosen below.");
      return true;
    }
    say(offer, "Still not finished; its operation page says how it goes.", { href: operation.url, text: "Operation" });
    return false;
  }

  form.querySelectorAll("[data-offer-url]").forEach((button) => {
    button.addEventListener("click", async () => {
      const offer = button.closest("[data-offer]");
      button.disabled = true;
      say(offer, "Queuing…");
      let answer;
      try {
        const response = await fetch(button.dataset.offerUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "X-CSRFToken": form.elements.csrfmiddlewaretoken.value },
        });
        answer = await response.json();
        if (!response.ok) throw new Error(answer.error || response.statusText);
      } catch (error) {
        say(offer, "Not queued: " + error.message);
        button.disabled = false;
        return;
      }
      say(offer, "Queued as operation #" + answer.operation + "; waiting for it to finish…", { href: answer.url, text: "Details" });
      if (!(await waitFor(offer.dataset.offer, offer, answer))) button.disabled = false;
    });
  });
})();
