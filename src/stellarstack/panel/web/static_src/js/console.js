// The console tab's terminal (xterm.js + fit addon). Streaming from the node comes later;
// for now it shows that the terminal works and says what will appear.
(function () {
  "use strict";
  function start() {
    var el = document.getElementById("console-terminal");
    if (!el || typeof window.Terminal !== "function") return;
    var dark = document.documentElement.getAttribute("data-theme") === "dark";
    var term = new window.Terminal({
      convertEol: true,
      disableStdin: true,
      cursorBlink: false,
      fontFamily: 'ui-monospace, "SFMono-Regular", "JetBrains Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      theme: dark
        ? { background: "#0a0c12", foreground: "#d7dbe6", cursor: "#8b7dff" }
        : { background: "#0f1220", foreground: "#e6e8f0", cursor: "#8b7dff" },
    });
    var fit = window.FitAddon ? new window.FitAddon.FitAddon() : null;
    if (fit) term.loadAddon(fit);
    term.open(el);
    if (fit) fit.fit();
    term.writeln("\x1b[38;5;141mStellarStack console\x1b[0m");
    term.writeln("\x1b[2mLive output from the node and a command prompt will appear here.\x1b[0m");
    if (fit) {
      window.addEventListener("resize", function () { fit.fit(); });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
