// keygate console: the little the pages do with a script. Everything here
// is an improvement on a page that works without it: the permission
// picker kept in step with the scope text field, and the copy button of
// the one-time secret. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  function tokens(text) {
    return text.split(/\s+/).filter(function (t) { return t !== ""; });
  }

  // The picker's boxes and the scope field say the same thing: ticking a
  // box adds its pattern to the field (a deny toggle's with "!"),
  // unticking removes it, and typing a pattern in the field ticks its
  // box. A pattern's allow box and deny toggle exclude each other:
  // ticking one unticks the other.
  function wirePicker(form) {
    var field = form.querySelector("#scope");
    var boxes = form.querySelectorAll('input[type=checkbox][name=perm], input[type=checkbox][name=deny]');
    if (!field || boxes.length === 0) { return; }
    // A box's pattern is its data-pattern: "svc:kind:op", or
    // "!svc:kind:op" for a deny toggle.
    var byToken = {};
    function tokenOf(b) { return b.getAttribute("data-pattern") || b.value; }
    boxes.forEach(function (b) { byToken[tokenOf(b)] = b; });
    function fromField() {
      var has = {};
      tokens(field.value).forEach(function (t) { has[t] = true; });
      boxes.forEach(function (b) { b.checked = !!has[tokenOf(b)]; });
    }
    function fromBoxes(changed) {
      var t = tokenOf(changed);
      if (changed.checked) {
        var other = byToken[t.charAt(0) === "!" ? t.slice(1) : "!" + t];
        if (other) { other.checked = false; }
      }
      var list = tokens(field.value).filter(function (x) { return !(x in byToken) || byToken[x].checked; });
      if (changed.checked && list.indexOf(t) < 0) { list.push(t); }
      field.value = list.join(" ");
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }
    boxes.forEach(function (b) {
      // The boxes are the field's: posting both would add back what the
      // field removed.
      b.removeAttribute("name");
      b.addEventListener("change", function () { fromBoxes(b); });
    });
    field.addEventListener("input", fromField);
    fromField();
  }

  // The copy button says "Copied" only once the clipboard took the
  // secret; when it did not (no clipboard API, a page not served over
  // HTTPS, a refused permission) it says so and leaves the secret
  // selected, to copy by hand.
  function wireCopy(button) {
    var msg = document.querySelector(button.getAttribute("data-copy-msg") || "#copy-msg");
    button.addEventListener("click", function () {
      var src = document.querySelector(button.getAttribute("data-copy"));
      if (!src) { return; }
      var say = function (text, cls) {
        if (msg) { msg.textContent = text; msg.className = "copy-msg " + cls; }
      };
      var failed = function () {
        button.textContent = "Copy";
        say("Copying failed: select the secret above and copy it by hand (Ctrl+C, or \u2318C on a Mac).", "field-error");
        src.focus();
        src.select();
      };
      button.textContent = "Copying\u2026";
      say("", "hint");
      var clip = navigator.clipboard;
      if (!clip || typeof clip.writeText !== "function") { failed(); return; }
      var copying;
      try { copying = clip.writeText(src.value); } catch (e) { failed(); return; }
      Promise.resolve(copying).then(function () {
        button.textContent = "Copied";
        say("Copied to the clipboard.", "hint");
      }, failed);
    });
  }

  // A tab list's links: arrow keys, Home and End move between the tabs
  // (the ARIA tabs pattern); Enter follows the link as without a script.
  function wireTabs(list) {
    var tabs = Array.prototype.slice.call(list.querySelectorAll('[role=tab]'));
    tabs.forEach(function (tab, i) {
      if (tab.getAttribute("aria-selected") !== "true") { tab.setAttribute("tabindex", "-1"); }
      tab.addEventListener("keydown", function (ev) {
        var to = -1;
        if (ev.key === "ArrowRight") { to = (i + 1) % tabs.length; }
        if (ev.key === "ArrowLeft") { to = (i - 1 + tabs.length) % tabs.length; }
        if (ev.key === "Home") { to = 0; }
        if (ev.key === "End") { to = tabs.length - 1; }
        if (to >= 0) { ev.preventDefault(); tabs[to].focus(); }
      });
    });
  }

  function init() {
    document.querySelectorAll("form#key-form, form#role-form").forEach(wirePicker);
    document.querySelectorAll("[role=tablist]").forEach(wireTabs);
    document.querySelectorAll("button.copy[data-copy]").forEach(wireCopy);
  }
  // The keys list's select-all box ticks (or unticks) every box of its
  // form named by data-select-all; delegated, so that it works on lists
  // htmx swaps in.
  document.addEventListener("change", function (e) {
    var all = e.target;
    if (!all.matches || !all.matches("input[data-select-all]")) { return; }
    var form = all.closest("form");
    if (!form) { return; }
    form.querySelectorAll('input[type=checkbox][name="' + all.getAttribute("data-select-all") + '"]').forEach(function (b) {
      b.checked = all.checked;
    });
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
