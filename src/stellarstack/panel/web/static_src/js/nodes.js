// Node detail: live CPU / memory / disk chart (uPlot) fed by polling the node's stats
// endpoint every 5 s. Points accumulate in the browser (the panel keeps only the latest
// heartbeat); each heartbeat is plotted once, keyed by its timestamp.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var MAX_POINTS = 360; // 30 minutes at one heartbeat per 5 s

  function start() {
    var host = document.getElementById("node-chart");
    if (!host) return;
    var url = host.getAttribute("data-stats-url");
    var data = [[], [], [], []];
    var chart = null;
    var lastSeen = null;

    function setText(name, text) {
      var el = document.querySelector('[data-metric="' + name + '"]');
      if (el) el.textContent = text;
    }

    function pct(value) {
      return typeof value === "number" ? Math.round(value) + "%" : "—";
    }

    function draw() {
      if (typeof window.uPlot !== "function") return;
      if (!data[0].length) {
        host.innerHTML = '<p class="node-chart-empty">Waiting for the first heartbeat…</p>';
        return;
      }
      var width = Math.max(host.clientWidth, 240);
      if (!chart) {
        host.innerHTML = "";
        chart = new window.uPlot({
          width: width,
          height: 240,
          scales: {
            // a few minutes wide until enough heartbeats arrive (one point alone spans years)
            x: { time: true, range: function (u, min, max) { return [Math.min(min, max - 300), max + 5]; } },
            y: { range: [0, 100] },
          },
          axes: [{}, { values: function (u, ticks) { return ticks.map(function (t) { return t + "%"; }); } }],
          series: [
            {},
            { label: "CPU", stroke: "#8b7dff", width: 2 },
            { label: "Memory", stroke: "#34d399", width: 2 },
            { label: "Disk", stroke: "#fbbf24", width: 2 },
          ],
        }, data, host);
      } else {
        chart.setData(data);
      }
    }

    function add(stats) {
      var metrics = stats.metrics || {};
      setText("cpu", pct(metrics.cpu));
      setText("memory", pct(metrics.memory));
      setText("disk", pct(metrics.disk));
      if (!stats.lastHeartbeatAt || stats.lastHeartbeatAt === lastSeen) return;
      lastSeen = stats.lastHeartbeatAt;
      setText("heartbeat", "last heartbeat " + new Date(stats.lastHeartbeatAt).toLocaleTimeString());
      data[0].push(Date.parse(stats.lastHeartbeatAt) / 1000);
      data[1].push(metrics.cpu);
      data[2].push(metrics.memory);
      data[3].push(metrics.disk);
      if (data[0].length > MAX_POINTS) data.forEach(function (s) { s.shift(); });
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) { if (body && body.data) add(body.data); draw(); })
        .catch(function () { /* the next poll tries again */ });
    }

    poll();
    setInterval(poll, POLL_MS);
    window.addEventListener("resize", function () {
      if (chart) chart.setSize({ width: Math.max(host.clientWidth, 240), height: 240 });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
