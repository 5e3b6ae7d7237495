// StellarStack panel behaviour: theme toggle, mobile navigation, dismissible flashes.
// No inline handlers anywhere: everything is wired here, so the CSP can forbid inline script.
(function () {
  "use strict";
  var KEY = "stellar-theme";
  var root = document.documentElement;
  var systemDark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function store(value) {
    try {
      if (value === null) window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, value);
    } catch (e) { /* storage blocked: the choice lasts for this page only */ }
  }

  function currentTheme() {
    return root.getAttribute("data-theme") === "dark" ? "dark" : "light";
  }

  function syncControls() {
    var theme = currentTheme();
    var fromSystem = root.getAttribute("data-theme-source") === "system";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      var next = theme === "dark" ? "light" : "dark";
      button.setAttribute("aria-label", "Switch to " + next + " theme");
      button.setAttribute("title", "Switch to " + next + " theme");
    });
    document.querySelectorAll("[data-theme-choice]").forEach(function (button) {
      var choice = button.getAttribute("data-theme-choice");
      var active = fromSystem ? choice === "system" : choice === theme;
      button.setAttribute("aria-pressed", active ? "true" : "false");
    });
  }

  function applyTheme(choice) {
    if (choice === "system") {
      store(null);
      root.setAttribute("data-theme", systemDark && systemDark.matches ? "dark" : "light");
      root.setAttribute("data-theme-source", "system");
    } else {
      store(choice);
      root.setAttribute("data-theme", choice);
      root.removeAttribute("data-theme-source");
    }
    syncControls();
  }

  function setSidebar(open) {
    var sidebar = document.getElementById("sidebar");
    var backdrop = document.querySelector("[data-sidebar-close]");
    if (!sidebar) return;
    sidebar.classList.toggle("is-open", open);
    if (backdrop) backdrop.hidden = !open;
    document.querySelectorAll("[data-sidebar-toggle]").forEach(function (button) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      button.setAttribute("aria-label", open ? "Close navigation" : "Open navigation");
    });
    if (open) {
      var first = sidebar.querySelector("a, button");
      if (first) first.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    if (target.closest("[data-theme-toggle]")) {
      applyTheme(currentTheme() === "dark" ? "light" : "dark");
    }
    var choice = target.closest("[data-theme-choice]");
    if (choice) applyTheme(choice.getAttribute("data-theme-choice"));
    if (target.closest("[data-sidebar-toggle]")) {
      var sidebar = document.getElementById("sidebar");
      setSidebar(!(sidebar && sidebar.classList.contains("is-open")));
    }
    if (target.closest("[data-sidebar-close]")) setSidebar(false);
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss && dismiss.parentElement) dismiss.parentElement.remove();
  });

  document.addEventListener("keydown", function (event) {
    var sidebar = document.getElementById("sidebar");
    if (event.key === "Escape" && sidebar && sidebar.classList.contains("is-open")) {
      setSidebar(false);
      var toggle = document.querySelector("[data-sidebar-toggle]");
      if (toggle) toggle.focus();
    }
  });

  if (systemDark && systemDark.addEventListener) {
    systemDark.addEventListener("change", function () {
      if (root.getAttribute("data-theme-source") === "system") applyTheme("system");
    });
  }

  // CSRF: htmx requests repeat the token of <meta name="csrf-token"> in X-CSRF-Token, and a
  // POST form without a csrf_token field gets one as it is submitted (auth/csrf.py checks both).
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token && event.detail && event.detail.headers) event.detail.headers["X-CSRF-Token"] = token;
  });

  document.addEventListener("submit", function (event) {
    var form = event.target instanceof HTMLFormElement ? event.target : null;
    var token = csrfToken();
    if (!form || !token || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    if (form.querySelector('input[name="csrf_token"]')) return;
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "csrf_token";
    input.value = token;
    form.appendChild(input);
  }, true);

  document.addEventListener("DOMContentLoaded", syncControls);
  if (document.readyState !== "loading") syncControls();
})();
