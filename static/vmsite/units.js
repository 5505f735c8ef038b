// Sizes shown to people, in binary units (KiB, MiB, GiB, TiB: powers of 1024), as the pages'
// `binary_size` filter (vmsite/units.py) writes them: one decimal below 10 of a unit, none above.
(function (root) {
  "use strict";
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function bytes(value) {
    if (value === null || value === undefined || value === "") return "";
    let amount = Number(value);
    let index = 0;
    while (Math.abs(amount) >= 1024 && index < UNITS.length - 1) { amount /= 1024; index += 1; }
    return amount.toFixed(index && Math.abs(amount) < 10 ? 1 : 0) + " " + UNITS[index];
  }

  function kib(value) { return value === null || value === undefined ? "" : bytes(value * 1024); }
  function perSecond(value) { return value === null || value === undefined ? "" : bytes(value) + "/s"; }

  // As many decimals as the step between a graph's ticks needs, so that 0, 0.2 and 0.4 do not all read "0".
  function decimalsFor(step) { return step > 0 && step < 1 ? Math.min(3, Math.ceil(-Math.log10(step) - 1e-9)) : 0; }

  // A graph axis of sizes: one unit for all its ticks (the largest tick's), and the decimals its step
  // needs in that unit, so that ticks 49.0, 49.5 and 50.0 MiB do not all read "50 MiB".
  function byteTicks(values, step, suffix) {
    let largest = Math.max.apply(null, values.map(function (value) { return Math.abs(value || 0); }));
    let index = 0;
    while (largest >= 1024 && index < UNITS.length - 1) { largest /= 1024; index += 1; }
    const scale = Math.pow(1024, index);
    const decimals = decimalsFor(step / scale);
    return values.map(function (value) {
      return value === null || value === undefined ? "" : (value / scale).toFixed(decimals) + " " + UNITS[index] + (suffix || "");
    });
  }

  root.vmsiteUnits = { bytes: bytes, kib: kib, perSecond: perSecond, decimalsFor: decimalsFor, byteTicks: byteTicks };
})(typeof window !== "undefined" ? window : globalThis);
