/* dpi page script: idle lock and emergency-access countdown. No framework, no inline script (CSP).
 *
 * Idle lock: after DPI_SESSION_IDLE_SECONDS without activity the page is cleared, the session is ended on
 * the server (POST session/lock/) and the lock screen is shown. A warning dialog appears
 * dpi-idle-warning-seconds before. The server enforces the same timeout on its own; while the user is active
 * in the page (typing a long note), a throttled ping keeps the server's idle clock in step. Activity in
 * another tab of the same site counts too (localStorage).
 */
(function () {
  "use strict";

  function meta(name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : null;
  }

  function post(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": meta("csrf-token") || "", "Accept": "application/json" }
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* --- emergency access countdown ---------------------------------------------------------------- */
  function countdowns() {
    var nodes = document.querySelectorAll("[data-remaining-seconds]");
    Array.prototype.forEach.call(nodes, function (node) {
      var end = Date.now() + parseInt(node.getAttribute("data-remaining-seconds"), 10) * 1000;
      var out = node.querySelector(".remaining") || node;
      function tick() {
        var left = Math.max(0, Math.round((end - Date.now()) / 1000));
        out.textContent = Math.floor(left / 3600) + ":" + pad(Math.floor(left % 3600 / 60)) + ":" + pad(left % 60);
        if (left <= 0) {
          window.clearInterval(timer);
          window.location.reload();
        }
      }
      var timer = window.setInterval(tick, 1000);
      tick();
    });
  }

  /* --- idle lock ----------------------------------------------------------------------------------- */
  function idleLock() {
    var idle = parseInt(meta("dpi-idle-seconds"), 10);
    if (!idle) { return; }
    var warnBefore = Math.min(parseInt(meta("dpi-idle-warning-seconds"), 10) || 60, idle);
    var pingEvery = Math.max(5, Math.min(60, Math.floor(idle / 4))) * 1000;
    var lastActivity = Date.now();
    var lastPing = Date.now();
    var warned = false;
    var locked = false;
    var dialog = document.getElementById("idle-warning");
    var counter = document.getElementById("idle-countdown");
    var stay = document.getElementById("idle-stay");
    var returnFocus = null;
    var KEY = "dpi-last-activity";

    function lock() {
      if (locked) { return; }
      locked = true;
      var next = window.location.pathname + window.location.search;
      var main = document.getElementById("main") || document.querySelector("main");
      if (main) { main.innerHTML = ""; }  /* no patient data left on an unattended screen */
      document.body.classList.add("is-locked");
      try { window.localStorage.setItem("dpi-locked", String(Date.now())); } catch (e) { /* private mode */ }
      var done = function () {
        window.location.replace(meta("dpi-locked-url") + "?next=" + encodeURIComponent(next));
      };
      post(meta("dpi-lock-url")).then(done, done);
    }

    function ping() {
      lastPing = Date.now();
      post(meta("dpi-ping-url")).then(function (r) {
        /* expired on the server: 401, or a redirect to the sign-in page */
        if (r.status === 401 || r.status === 403 || r.redirected) { lock(); }
      }, function () { /* offline: the local timer still locks */ });
    }

    function hideWarning() {
      if (!warned) { return; }
      warned = false;
      if (dialog) { dialog.hidden = true; }
      if (returnFocus && returnFocus.focus) { returnFocus.focus(); }
    }

    function showWarning(left) {
      if (counter) { counter.textContent = String(left); }
      if (warned) { return; }
      warned = true;
      returnFocus = document.activeElement;
      if (dialog) {
        dialog.hidden = false;
        if (stay) { stay.focus(); }
      }
    }

    function active(share) {
      if (locked || warned) { return; }  /* once warned, only "Stay signed in" keeps the session */
      lastActivity = Date.now();
      if (share) {
        try { window.localStorage.setItem(KEY, String(lastActivity)); } catch (e) { /* private mode */ }
      }
      if (Date.now() - lastPing > pingEvery) { ping(); }
    }

    if (stay) {
      stay.addEventListener("click", function () {
        lastActivity = Date.now();
        hideWarning();
        ping();
      });
    }
    ["keydown", "mousedown", "pointerdown", "touchstart", "wheel", "input"].forEach(function (type) {
      document.addEventListener(type, function () { active(true); }, { passive: true, capture: true });
    });
    window.addEventListener("storage", function (e) {
      if (e.key === KEY && e.newValue) {
        lastActivity = Math.max(lastActivity, parseInt(e.newValue, 10) || 0);
        hideWarning();
      } else if (e.key === "dpi-locked") {
        lock();
      }
    });
    window.setInterval(function () {
      if (locked) { return; }
      var elapsed = (Date.now() - lastActivity) / 1000;
      if (elapsed >= idle) {
        lock();
      } else if (elapsed >= idle - warnBefore) {
        showWarning(Math.ceil(idle - elapsed));
      }
    }, 250);
  }

  /* --- confirm buttons (e.g. a review decision) --------------------------------------------------- */
  function confirms() {
    document.addEventListener("submit", function (e) {
      var form = e.target;
      var text = form.getAttribute && form.getAttribute("data-confirm");
      if (text && !window.confirm(text)) { e.preventDefault(); }
    });
  }

  function start() {
    countdowns();
    idleLock();
    confirms();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
