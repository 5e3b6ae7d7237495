// Runs in <head>, before the first paint: apply the saved theme, else the system's.
(function () {
  "use strict";
  var saved = null;
  try {
    saved = window.localStorage.getItem("stellar-theme");
  } catch (e) {
    saved = null; // storage blocked (private mode, policies): follow the system
  }
  var root = document.documentElement;
  if (saved === "light" || saved === "dark") {
    root.setAttribute("data-theme", saved);
  } else {
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    root.setAttribute("data-theme", dark ? "dark" : "light");
    root.setAttribute("data-theme-source", "system");
  }
})();
