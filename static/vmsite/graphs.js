// Graphs of a VM or a host (uPlot): loaded for the chosen range, then extended in place each time
// the live socket says its host has new samples.
(function () {
  "use strict";
  const root = document.getElementById("graphs");
  if (!root || !window.uPlot || !window.vmsiteUnits) return;
  let url = root.dataset.graphsUrl;
  let hostId = Number(root.dataset.graphsHost);
  let stopped = false;  // the VM is gone: no more requests into 404s
  const kind = root.dataset.graphsKind;
  const RANGE_SECONDS = { "1h": 3600, "6h": 21600, "24h": 86400 };
  const perSecond = window.vmsiteUnits.perSecond; // binary units, as every page (units.js)
  const kib = window.vmsiteUnits.kib;
  const percent = function (value) { return value === null || value === undefined ? "" : value.toFixed(1) + " %"; };
  const iops = function (value) { return value === null || value === undefined ? "" : value.toFixed(value && Math.abs(value) < 10 ? 1 : 0) + " IOPS"; };
  // Axis labels, given all the ticks of an axis and the step between them (units.js: the decimals the
  // step needs, one unit per axis).
  const decimalsFor = window.vmsiteUnits.decimalsFor;
  const stepped = function (unit) {
    return function (values, step) {
      return values.map(function (value) { return value === null || value === undefined ? "" : value.toFixed(decimalsFor(step)) + unit; });
    };
  };
  const sizes = function (values, step) { return window.vmsiteUnits.byteTicks(values, step, ""); };
  const kibSizes = function (values, step) {
    return sizes(values.map(function (value) { return value === null || value === undefined ? value : value * 1024; }), step * 1024);
  };
  const sizesPerSecond = function (values, step) { return window.vmsiteUnits.byteTicks(values, step, "/s"); };
  // A time axis needs a span: given one point, uPlot makes one of 86400/1e-3 seconds (2027 to 2029);
  // points a few seconds apart fill the width. Below a minute of data, show the last minute.
  const MIN_SPAN_SECONDS = 60;
  const timeRange = function (u, min, max) {
    const times = u.data && u.data[0];
    if (!times || !times.length) {
      const now = Date.now() / 1000;
      return [now - RANGE_SECONDS[range], now];
    }
    const last = times[times.length - 1];
    if (last - times[0] < MIN_SPAN_SECONDS) return [last - MIN_SPAN_SECONDS, last + MIN_SPAN_SECONDS / 20];
    return [min, max];
  };
  const CHARTS = {
    vm: [
      { id: "cpu", title: "CPU", format: percent, axis: stepped(" %"), fields: [["cpu_percent", "CPU"]] },
      { id: "memory", title: "Memory", format: kib, axis: kibSizes, fields: [["memory_kib", "Memory"]] },
      { id: "disk", title: "Disk", format: perSecond, axis: sizesPerSecond, fields: [["disk_read_bps", "Read"], ["disk_write_bps", "Write"]] },
      { id: "iops", title: "Disk IOPS", format: iops, axis: stepped(" IOPS"), fields: [["disk_read_iops", "Read"], ["disk_write_iops", "Write"]] },
      { id: "net", title: "Network", format: perSecond, axis: sizesPerSecond, fields: [["net_rx_bps", "Received"], ["net_tx_bps", "Sent"]] },
    ],
    host: [
      { id: "cpu", title: "CPU", format: percent, axis: stepped(" %"), fields: [["cpu_percent", "Host"], ["vms_cpu_percent", "Sum of its VMs (% of one vCPU each)"]] },
      { id: "memory", title: "Memory", format: kib, axis: kibSizes, fields: [["memory_kib", "Host in use"], ["vms_memory_kib", "Its VMs"]] },
      { id: "disk", title: "Disk (its VMs)", format: perSecond, axis: sizesPerSecond, fields: [["disk_read_bps", "Read"], ["disk_write_bps", "Write"]] },
      { id: "net", title: "Network (its VMs)", format: perSecond, axis: sizesPerSecond, fields: [["net_rx_bps", "Received"], ["net_tx_bps", "Sent"]] },
    ],
  }[kind];
  const COLOURS = ["#0d6efd", "#fd7e14", "#198754", "#6f42c1"];
  let range = "1h";
  let columns = null;
  let charts = [];
  let loading = false;

  // One line per tick, 24-hour clock: uPlot's default adds a second line of dates that overlap
  // each other when a graph spans a minute or two.
  function timeLabel(seconds, step) {
    const at = new Date(seconds * 1000);
    const pad = function (n) { return String(n).padStart(2, "0"); };
    const clock = pad(at.getHours()) + ":" + pad(at.getMinutes());
    if (step < 60) return clock + ":" + pad(at.getSeconds());
    if (step < 86400) return clock;
    return at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate());
  }

  function build() {
    const holder = document.getElementById("graphs-charts");
    holder.replaceChildren();
    charts = CHARTS.map(function (spec) {
      const cell = document.createElement("div");
      cell.className = "col-xl-4 col-lg-6";
      cell.dataset.chart = spec.id;
      holder.appendChild(cell);
      const options = {
        title: spec.title, width: Math.max(280, cell.clientWidth - 12), height: 180,
        series: [{}].concat(spec.fields.map(function (field, index) {
          return { label: field[1], stroke: COLOURS[index], width: 1.5, value: function (u, v) { return spec.format(v); } };
        })),
        axes: [{ values: function (u, ticks, axisIndex, space, step) { return ticks.map(function (t) { return timeLabel(t, step); }); } }, {
          values: function (u, values, axisIndex, space, step) {
            return spec.axis(values, step);
          },
          size: 70,
        }],
        scales: { x: { time: true, range: timeRange } },
      };
      const plot = new uPlot(options, dataFor(spec), cell);
      cell.uplot = plot;  // for the browser tests, which read the drawn scales and tick labels
      return { spec: spec, plot: plot };
    });
  }

  function dataFor(spec) {
    if (!columns) return [[]].concat(spec.fields.map(function () { return []; }));
    return [columns.t].concat(spec.fields.map(function (field) { return columns[field[0]] || []; }));
  }

  function draw() {
    document.getElementById("graphs-empty").hidden = Boolean(columns && columns.t.length);
    root.dataset.points = columns ? String(columns.t.length) : "0";
    charts.forEach(function (chart) { chart.plot.setData(dataFor(chart.spec)); });
  }

  async function stop(response) {
    stopped = true;
    const body = await response.json().catch(function () { return {}; });
    const empty = document.getElementById("graphs-empty");
    empty.textContent = body.error || "No more points: this is gone from its host.";
    empty.hidden = false;
  }

  async function load(incremental) {
    if (loading || stopped) return;
    loading = true;
    try {
      const last = incremental && columns && columns.t.length ? columns.t[columns.t.length - 1] : null;
      const query = "?range=" + range + (last !== null ? "&since=" + last : "");
      let response;
      try {
        response = await fetch(url + query, { credentials: "same-origin" });
      } catch (error) {
        return; // the server is away, or the page is being left: the next sample message asks again
      }
      if (response.status === 404 || response.status === 410) return stop(response);
      if (!response.ok) return;
      // A VM whose old id forwards (it moved): follow it, and its new host's sample messages.
      if (response.redirected) url = new URL(response.url).pathname;
      const body = await response.json();
      if (body.host) hostId = body.host;
      const fresh = body.series;
      if (last === null || !columns) {
        columns = fresh;
      } else {
        Object.keys(columns).forEach(function (key) { columns[key] = columns[key].concat(fresh[key] || []); });
        const oldest = Date.now() / 1000 - RANGE_SECONDS[range];
        let drop = 0;
        while (drop < columns.t.length && columns.t[drop] < oldest) drop += 1;
        if (drop) Object.keys(columns).forEach(function (key) { columns[key] = columns[key].slice(drop); });
      }
      draw();
    } finally {
      loading = false;
    }
  }

  root.querySelectorAll("[data-range]").forEach(function (button) {
    button.addEventListener("click", function () {
      root.querySelectorAll("[data-range]").forEach(function (other) { other.classList.toggle("active", other === button); });
      range = button.dataset.range;
      columns = null;
      load(false);
    });
  });
  document.addEventListener("live:message", function (event) {
    const message = event.detail;
    if (message.type === "metrics" && message.host === hostId) load(true);
  });
  document.addEventListener("live:reconnected", function () { load(false); });
  window.addEventListener("resize", function () {
    charts.forEach(function (chart) {
      const cell = root.querySelector("[data-chart='" + chart.spec.id + "']");
      chart.plot.setSize({ width: Math.max(280, cell.clientWidth - 12), height: 180 });
    });
  });
  build();
  load(false);
})();
