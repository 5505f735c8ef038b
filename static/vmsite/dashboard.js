// The dashboard's busiest-VMs part reads the graphs' samples, which change every few seconds
// without a live message worth reloading for: fetch it again every data-refresh-seconds.
(function () {
  "use strict";
  const ID = "dashboard-busiest";
  const region = document.getElementById(ID);
  if (!region || !window.vmsiteLive) return;
  const seconds = parseInt(region.dataset.refreshSeconds, 10) || 10;
  setInterval(function () {
    if (!document.hidden) window.vmsiteLive.refresh(ID);
  }, seconds * 1000);
})();
