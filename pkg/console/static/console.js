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
  // box adds its pattern to the field, unticking removes it, and typing a
  // pattern in the field ticks its box.
  function wirePicker(form) {
    var field = form.querySelector("#scope");
    var boxes = form.querySelectorAll('input[type=checkbox][name=perm]');
    if (!field || boxes.length === 0) { return; }
    var values = {};
    boxes.forEach(function (b) { values[b.value] = b; });
    function fromField() {
      var has = {};
      tokens(field.value).forEach(function (t) { has[t] = true; });
      boxes.forEach(function (b) { b.checked = !!has[b.value]; });
    }
    function fromBoxes(changed) {
      var list = tokens(field.value).filter(function (t) { return !(t in values) || values[t].checked; });
      if (changed.checked && list.indexOf(changed.value) < 0) { list.push(changed.value); }
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

  function wireCopy(button) {
    button.addEventListener("click", function () {
      var src = document.querySelector(button.getAttribute("data-copy"));
      if (!src) { return; }
      src.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(src.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
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
