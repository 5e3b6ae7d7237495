// Server pages: copy-to-clipboard buttons, the game filter of the deploy wizard, and the
// delete confirmation (the button unlocks once the server's name is typed).
// Live status: fragments marked data-live-refresh are re-fetched (htmx event `live-refresh`)
// whenever the panel's SSE stream reports a server event; they also poll as a fallback.
// Nothing here renders server text as HTML.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP panels have no async clipboard: fall back to a selected hidden field.
    return new Promise(function (resolve, reject) {
      var field = document.createElement("textarea");
      field.value = text;
      field.setAttribute("readonly", "");
      field.className = "srv-offscreen";
      document.body.appendChild(field);
      field.select();
      try {
        if (document.execCommand("copy")) resolve(); else reject(new Error("copy refused"));
      } catch (err) {
        reject(err);
      } finally {
        field.remove();
      }
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var button = target && target.closest("[data-copy]");
    if (!button) return;
    var text = button.getAttribute("data-copy") || "";
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(text).then(function () {
      button.textContent = "Copied";
      button.setAttribute("data-copied", "");
    }, function () {
      button.textContent = "Copy failed";
    }).then(function () {
      window.setTimeout(function () {
        button.textContent = label;
        button.removeAttribute("data-copied");
      }, 1500);
    });
  });

  // Step 1 of the wizard: narrow the game cards as the user types (the form still works
  // without JavaScript, as a GET search).
  document.addEventListener("input", function (event) {
    var input = event.target instanceof HTMLInputElement ? event.target : null;
    if (!input) return;
    if (input.hasAttribute("data-game-filter")) {
      var words = input.value.toLowerCase().trim();
      var shown = 0;
      document.querySelectorAll("[data-game]").forEach(function (card) {
        var hay = (card.getAttribute("data-game") || "").toLowerCase();
        var match = !words || hay.indexOf(words) !== -1;
        card.hidden = !match;
        if (match) shown += 1;
      });
      var none = document.querySelector("[data-game-none]");
      if (none) none.hidden = shown !== 0;
    }
    if (input.hasAttribute("data-confirm-for")) {
      var form = input.form;
      var submit = form && form.querySelector("[data-confirm-submit]");
      if (submit) submit.disabled = input.value.trim() !== input.getAttribute("data-confirm-for");
    }
  });

  // The delete button waits for the name to be typed (the server checks it again).
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-confirm-submit]").forEach(function (button) {
      button.disabled = true;
    });
  });

  // htmx swaps a status fragment in place: keep keyboard focus on the power button that
  // was pressed, if it is still there, so a keyboard user is not thrown to the top.
  document.addEventListener("htmx:afterSwap", function (event) {
    var detail = event.detail || {};
    var trigger = detail.requestConfig && detail.requestConfig.elt;
    var action = trigger && trigger.getAttribute && trigger.getAttribute("data-power");
    if (!action) return;
    var again = document.querySelector('[data-power="' + action + '"]');
    if (again && !again.disabled) again.focus();
  });

  // One event stream per page (GET /api/v1/events/stream); a burst of events causes one
  // refresh. Without EventSource, or when the stream fails, polling carries on alone.
  var LIVE_EVENTS = ["server.status", "deployment.progress", "server.deleted"];
  var pending = null;

  function refreshLive() {
    pending = null;
    if (!window.htmx) return;
    document.querySelectorAll("[data-live-refresh]").forEach(function (el) {
      window.htmx.trigger(el, "live-refresh");
    });
  }

  function openStream() {
    var live = document.querySelector("[data-live-refresh]");
    if (!live || typeof window.EventSource !== "function") return;
    var server = live.getAttribute("data-live-server");
    var url = "/api/v1/events/stream" + (server ? "?servers=" + encodeURIComponent(server) : "");
    var source = new window.EventSource(url);
    LIVE_EVENTS.forEach(function (name) {
      source.addEventListener(name, function () {
        if (pending === null) pending = window.setTimeout(refreshLive, 150);
      });
    });
    source.onerror = function () {
      if (source.readyState === window.EventSource.CLOSED) source = null;
    };
    window.addEventListener("pagehide", function () { if (source) source.close(); });
  }

  document.addEventListener("DOMContentLoaded", openStream);
})();
