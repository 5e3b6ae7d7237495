// The server console page (docs/console-protocol.md): xterm.js output, a command line with
// history, power buttons, live CPU / memory / network charts (uPlot).
//
// Flow: GET the page's data-token-url (a five-minute console token + the node's socket URL),
// open that WebSocket, send `auth`. The daemon replays recent output and streams the rest.
// `token expiring` fetches a new token and re-authenticates on the same socket, so the view
// stays as it is; a dropped socket reconnects with backoff. Output goes to xterm (never HTML).
(function () {
  "use strict";
  var MAX_POINTS = 120; // two minutes of one-second samples
  var WINDOW_SECONDS = 60;
  var HISTORY_MAX = 100;
  var BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
  var POWER_WHEN = {
    start: ["stopped", "crashed", "install_failed"],
    restart: ["running", "starting"],
    stop: ["running", "starting"],
    kill: ["running", "starting", "stopping"],
  };
  var DIM = "\x1b[2m", YELLOW = "\x1b[33m", RED = "\x1b[31m", RESET = "\x1b[0m";

  function frameColour(host) {
    var frame = host.parentNode;
    var colour = frame ? window.getComputedStyle(frame).backgroundColor : "";
    return colour && colour !== "rgba(0, 0, 0, 0)" ? colour : "#0f1220";
  }

  function start() {
    var root = document.getElementById("console");
    var host = document.getElementById("console-terminal");
    if (!root || !host || typeof window.Terminal !== "function") return;
    var tokenUrl = root.getAttribute("data-token-url");
    var statusEl = root.querySelector("[data-console-status]");
    var statusText = root.querySelector("[data-console-status-text]");
    var linkEl = root.querySelector("[data-console-link]");
    var noticeEl = root.querySelector("[data-console-notice]");
    var readonlyEl = root.querySelector("[data-console-readonly]");
    var form = root.querySelector("[data-console-form]");
    var input = form.querySelector("input");
    var sendButton = form.querySelector("button");
    var powerButtons = Array.prototype.slice.call(root.querySelectorAll("[data-power]"));

    var term = new window.Terminal({
      convertEol: true,
      disableStdin: true,
      cursorBlink: false,
      scrollback: 5000,
      fontFamily: 'ui-monospace, "SFMono-Regular", "JetBrains Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      theme: { background: frameColour(host), foreground: "#e6e8f0", cursor: frameColour(host) },
    });
    var fit = window.FitAddon ? new window.FitAddon.FitAddon() : null;
    if (fit) term.loadAddon(fit);
    term.open(host);
    function refit() { if (fit) { try { fit.fit(); } catch (e) { /* hidden */ } } }
    refit();
    if (typeof window.ResizeObserver === "function") new window.ResizeObserver(refit).observe(host);
    else window.addEventListener("resize", refit);

    var charts = makeCharts(root);
    var socket = null;
    var attempt = 0;
    var everConnected = false;
    var retryTimer = null;
    var permissions = { canRead: true, canWrite: false, power: [] };
    var status = "unknown";
    var history = [];
    var historyAt = 0;
    var draft = "";

    // --- what the page shows -------------------------------------------------------------
    function setLink(state, text) {
      linkEl.className = "con-link con-link-" + state;
      linkEl.textContent = text;
      root.setAttribute("data-link", state);
    }

    function notice(text, isError) {
      noticeEl.hidden = !text;
      noticeEl.textContent = text || "";
      noticeEl.classList.toggle("con-notice-error", !!isError);
    }

    function setStatus(value) {
      status = String(value || "unknown");
      statusEl.className = "con-badge con-status-" + status.replace(/[^a-z_]/g, "");
      statusText.textContent = status.replace("_", " ");
      root.setAttribute("data-status", status);
      if (status !== "running" && status !== "starting") charts.idle();
      updateControls();
    }

    function connected() { return socket !== null && socket.readyState === 1 && socket._authed; }

    function updateControls() {
      var live = connected();
      var canWrite = !!permissions.canWrite;
      input.disabled = !live || !canWrite;
      sendButton.disabled = !live || !canWrite;
      readonlyEl.hidden = canWrite;
      var allowed = permissions.power || [];
      powerButtons.forEach(function (button) {
        var action = button.getAttribute("data-power");
        button.hidden = allowed.indexOf(action) < 0;
        button.disabled = !live || (POWER_WHEN[action] || []).indexOf(status) < 0;
      });
    }

    // --- the connection ------------------------------------------------------------------
    function fetchGrant() {
      return fetch(tokenUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            if (response.ok && body && body.data) return body.data;
            var detail = body && body.error && body.error.detail;
            throw {
              status: response.status,
              detail: detail || "The panel did not hand out a console token (HTTP " + response.status + ").",
              retryAfter: Number(response.headers.get("Retry-After")) || 0,
            };
          });
        });
    }

    function scheduleRetry(seconds) {
      if (retryTimer) return;
      var delay = seconds ? seconds * 1000 : BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      delay = Math.round(delay * (0.8 + Math.random() * 0.4));
      attempt += 1;
      setLink("retrying", "reconnecting in " + Math.max(1, Math.round(delay / 1000)) + " s…");
      retryTimer = window.setTimeout(function () { retryTimer = null; connect(); }, delay);
    }

    function connect() {
      setLink("connecting", "connecting…");
      fetchGrant().then(open, function (error) {
        if (error && (error.status === 401 || error.status === 403 || error.status === 404)) {
          setLink("failed", "not connected");
          notice(error.status === 401 ? "Your session has ended: sign in again to use the console."
                                      : error.detail, true);
          return;
        }
        notice((error && error.detail) || "The panel cannot be reached.", false);
        scheduleRetry(error && error.retryAfter);
      });
    }

    function open(grant) {
      permissions = grant.permissions || permissions;
      updateControls();
      var ws;
      try {
        ws = new WebSocket(grant.socketUrl);
      } catch (e) {
        notice("The node's console address is not valid: " + grant.socketUrl, true);
        setLink("failed", "not connected");
        return;
      }
      ws._authed = false;
      socket = ws;
      ws.onopen = function () { ws.send(JSON.stringify({ event: "auth", args: [grant.token] })); };
      ws.onmessage = function (event) { if (socket === ws) handle(ws, event.data); };
      ws.onclose = function (event) {
        if (socket !== ws) return;
        socket = null;
        updateControls();
        if (event.code === 4404) notice("The node does not run this server yet (is it still installing?).", false);
        else if (event.code === 4429) notice("Too many consoles are open for this server; retrying.", false);
        else if (event.code !== 4001 && event.reason) notice("Console closed: " + event.reason, false);
        scheduleRetry(event.code === 4001 ? 0.3 : 0);
      };
    }

    function send(event, args) {
      if (!connected()) return false;
      socket.send(JSON.stringify({ event: event, args: args || [] }));
      return true;
    }

    function refreshToken(ws) {
      fetchGrant().then(function (grant) {
        if (socket === ws && ws.readyState === 1) {
          ws.send(JSON.stringify({ event: "auth", args: [grant.token] }));
        }
      }, function () { /* the socket closes at expiry and reconnects with a new token */ });
    }

    function handle(ws, text) {
      var message;
      try { message = JSON.parse(text); } catch (e) { return; }
      var args = Array.isArray(message.args) ? message.args : [];
      switch (message.event) {
        case "auth success":
          if (!ws._authed) {
            ws._authed = true;
            attempt = 0;
            if (everConnected) term.writeln(DIM + "── reconnected ──" + RESET);
            everConnected = true;
          }
          if (args[0]) permissions = args[0];
          setLink("connected", "connected");
          notice("");
          updateControls();
          break;
        case "console output":
        case "install output":
          if (args.length) term.write(args.join("\r\n") + "\r\n");
          break;
        case "status":
          setStatus(args[0]);
          break;
        case "stats":
          if (args[0] && typeof args[0] === "object") charts.add(args[0]);
          break;
        case "token expiring":
          refreshToken(ws);
          break;
        case "daemon message":
          term.writeln(YELLOW + "[daemon] " + String(args[0] || "") + RESET);
          break;
        case "daemon error":
          term.writeln(RED + "[daemon] " + String(args[0] || "") + RESET);
          break;
        default:
          break;
      }
    }

    // --- the command line ----------------------------------------------------------------
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var command = input.value;
      if (!command.trim()) return;
      if (!send("send command", [command])) return;
      if (history[history.length - 1] !== command) history.push(command);
      if (history.length > HISTORY_MAX) history.shift();
      historyAt = history.length;
      draft = "";
      input.value = "";
    });

    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowUp") {
        if (!history.length || historyAt === 0) return;
        if (historyAt === history.length) draft = input.value;
        historyAt -= 1;
      } else if (event.key === "ArrowDown") {
        if (historyAt >= history.length) return;
        historyAt += 1;
      } else {
        return;
      }
      event.preventDefault();
      input.value = historyAt === history.length ? draft : history[historyAt];
      input.setSelectionRange(input.value.length, input.value.length);
    });

    powerButtons.forEach(function (button) {
      button.addEventListener("click", function () {
        if (send("set state", [button.getAttribute("data-power")])) button.disabled = true;
      });
    });

    setStatus("unknown");
    connect();
  }

  // --- live charts (uPlot) ---------------------------------------------------------------
  function makeCharts(root) {
    var hosts = {};
    ["cpu", "memory", "network"].forEach(function (name) {
      hosts[name] = root.parentNode.querySelector('[data-chart="' + name + '"]');
    });
    var data = { cpu: [[], []], memory: [[], []], network: [[], [], []] };
    var plots = {};
    var last = null;

    function bytes(value) {
      var units = ["B", "KiB", "MiB", "GiB", "TiB"];
      var i = 0;
      while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
      return (i ? value.toFixed(1) : Math.round(value)) + " " + units[i];
    }

    function setText(name, text) {
      var el = document.querySelector('[data-metric="' + name + '"]');
      if (el) el.textContent = text;
    }

    var specs = {
      cpu: { series: [{ label: "CPU", stroke: "#8b7dff", fill: "rgba(139,125,255,0.12)" }],
             format: function (v) { return v.toFixed(0) + "%"; }, min: 100 },
      memory: { series: [{ label: "Memory", stroke: "#34d399", fill: "rgba(52,211,153,0.12)" }],
                format: bytes, min: 0 },
      network: { series: [{ label: "In", stroke: "#60a5fa" }, { label: "Out", stroke: "#fbbf24" }],
                 format: function (v) { return bytes(v) + "/s"; }, min: 0 },
    };

    function draw(name) {
      var host = hosts[name];
      if (!host || typeof window.uPlot !== "function") return;
      var spec = specs[name];
      var width = Math.max(host.clientWidth, 200);
      if (!plots[name]) {
        host.textContent = "";
        plots[name] = new window.uPlot({
          width: width,
          height: 150,
          legend: { show: false },
          cursor: { show: true, drag: { x: false, y: false } },
          scales: {
            x: { time: true, auto: false },
            y: { range: function (u, min, max) { return [0, Math.max(spec.min, max * 1.15 || 1)]; } },
          },
          axes: [{ size: 28 }, { size: 64, values: function (u, ticks) { return ticks.map(spec.format); } }],
          series: [{}].concat(spec.series.map(function (s) {
            return { label: s.label, stroke: s.stroke, fill: s.fill, width: 2, value: function (u, v) { return v == null ? "—" : spec.format(v); } };
          })),
        }, data[name], host);
      } else {
        plots[name].setData(data[name]);
      }
      // a fixed one-minute window: one sample alone would otherwise span years
      var times = data[name][0];
      var newest = times[times.length - 1];
      plots[name].setScale("x", { min: newest - WINDOW_SECONDS, max: newest });
    }

    function push(name, at, values) {
      var series = data[name];
      series[0].push(at);
      values.forEach(function (v, i) { series[i + 1].push(v); });
      if (series[0].length > MAX_POINTS) series.forEach(function (s) { s.shift(); });
    }

    Object.keys(hosts).forEach(function (name) {
      var host = hosts[name];
      if (!host) return;
      host.innerHTML = '<p class="con-plot-empty">Waiting for the server\'s first sample…</p>';
      if (typeof window.ResizeObserver === "function") {
        new window.ResizeObserver(function () {
          if (plots[name]) plots[name].setSize({ width: Math.max(host.clientWidth, 200), height: 150 });
        }).observe(host);
      }
    });

    return {
      idle: function () {
        last = null;
        var uptime = root.parentNode.querySelector("[data-console-uptime]");
        if (uptime) uptime.textContent = "";
      },
      add: function (stats) {
        var now = Date.now() / 1000;
        var cpu = Number(stats.cpu) || 0;
        var memory = Number(stats.memory) || 0;
        var limit = Number(stats.memoryLimit) || 0;
        setText("cpu", cpu.toFixed(1) + "%");
        setText("memory", bytes(memory) + (limit ? " / " + bytes(limit) : ""));
        push("cpu", now, [cpu]);
        push("memory", now, [memory]);
        var rx = Number(stats.networkRx) || 0, tx = Number(stats.networkTx) || 0;
        if (last && now > last.at && rx >= last.rx && tx >= last.tx) {
          var span = now - last.at;
          var inRate = (rx - last.rx) / span, outRate = (tx - last.tx) / span;
          setText("network", "↓ " + bytes(inRate) + "/s  ↑ " + bytes(outRate) + "/s");
          push("network", now, [inRate, outRate]);
          draw("network");
        }
        last = { at: now, rx: rx, tx: tx };
        var uptime = root.parentNode.querySelector("[data-console-uptime]");
        if (uptime && typeof stats.uptime === "number") {
          var s = Math.floor(stats.uptime);
          uptime.textContent = "up " + Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m " + (s % 60) + "s";
        }
        draw("cpu");
        draw("memory");
      },
    };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
