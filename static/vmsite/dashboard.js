// Some of the dashboard changes with no live message worth reloading for: the busiest VMs (graph
// samples, every few seconds) and what time alone changes (a failed operation leaving the last
// hour). Each part marked data-refresh-seconds is fetched again that often, by its id.
(function () {
  "use strict";
  if (!window.vmsiteLive) return;
  document.querySelectorAll("[data-refresh-seconds][id]").forEach(function (region) {
    const id = region.id;
    const seconds = parseInt(region.dataset.refreshSeconds, 10) || 60;
    setInterval(function () {
      if (!document.hidden) window.vmsiteLive.refresh(id);
    }, seconds * 1000);
  });
})();
