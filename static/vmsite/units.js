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

  root.vmsiteUnits = { bytes: bytes, kib: kib, perSecond: perSecond };
})(typeof window !== "undefined" ? window : globalThis);
