// Live events for every signed-in page: one EventSource on /api/v1/events/stream, re-dispatched
// as DOM events so any page script can listen without opening its own stream:
//
//   document.addEventListener("stellar:server.status", (e) => {
//     const { serverId, data } = e.detail;   // data.status, data.reason, ...
//   });
//
// e.detail is the event as the panel sent it ({id, type, nodeId, serverId, timestamp, data})
// plus eventId (the stream position). "stellar:connection" tells the connection state
// (detail.state: "live" | "reconnecting" | "closed"), also kept in <html data-events="…">.
// "stellar:resync" means events may have been missed: re-read what the page shows.
//
// The browser reconnects by itself after a network error and resumes from the last event
// (Last-Event-ID). When the server refuses (503 while Redis is down), this reconnects with
// backoff and resumes with ?lastEventId=. It stops for good after "stellar.closed" (signed
// out, key revoked).
(function () {
  "use strict";
  if (window.StellarEvents || typeof window.EventSource !== "function") {
    return;
  }

  var STREAM = "/api/v1/events/stream";
  var TYPES = [
    "server.status",
    "server.metrics",
    "server.command",
    "node.heartbeat",
    "node.status",
    "node.alert",
    "command.result",
    "deployment.progress",
  ];
  var source = null;
  var lastId = null;
  var backoff = 1000;
  var timer = null;
  var stopped = false;

  function setState(state) {
    document.documentElement.dataset.events = state;
    document.dispatchEvent(new CustomEvent("stellar:connection", { detail: { state: state } }));
  }

  function relay(type) {
    return function (message) {
      var detail;
      try {
        detail = JSON.parse(message.data);
      } catch (err) {
        return; // never a reason to break the page
      }
      if (message.lastEventId) {
        lastId = message.lastEventId;
        detail.eventId = lastId;
      }
      document.dispatchEvent(new CustomEvent("stellar:" + type, { detail: detail }));
    };
  }

  function scheduleReconnect() {
    if (stopped || timer !== null) {
      return;
    }
    setState("reconnecting");
    timer = window.setTimeout(function () {
      timer = null;
      connect();
    }, backoff);
    backoff = Math.min(backoff * 2, 30000);
  }

  function connect() {
    var url = lastId ? STREAM + "?lastEventId=" + encodeURIComponent(lastId) : STREAM;
    source = new EventSource(url, { withCredentials: true });
    source.addEventListener("open", function () {
      backoff = 1000;
      setState("live");
    });
    source.addEventListener("error", function () {
      // CONNECTING: the browser retries by itself. CLOSED: the server said no; we retry.
      if (source.readyState === EventSource.CLOSED) {
        scheduleReconnect();
      } else {
        setState("reconnecting");
      }
    });
    TYPES.forEach(function (type) {
      source.addEventListener(type, relay(type));
    });
    source.addEventListener("stellar.resync", relay("resync"));
    source.addEventListener("stellar.degraded", relay("degraded"));
    source.addEventListener("stellar.closed", function () {
      stopped = true;
      source.close();
      setState("closed");
    });
  }

  window.StellarEvents = {
    /** Relay another event type too (types must be named up front for EventSource). */
    watch: function (type) {
      if (TYPES.indexOf(type) === -1) {
        TYPES.push(type);
        if (source) {
          source.addEventListener(type, relay(type));
        }
      }
    },
  };
  window.addEventListener("pagehide", function () {
    if (source) {
      source.close();
    }
  });
  connect();
})();
