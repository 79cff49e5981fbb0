// tunegate report: filter and sort the item flips. Reads only data attributes; writes only textContent.
// The flips start collapsed per suite; a filter (direction, suite, group, search) opens the suites that hold a
// match and hides the rest, with the count shown in each suite's summary; clearing the filters collapses them again.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("article.flip"));
  var blocks = Array.prototype.slice.call(document.querySelectorAll("details.suite-flips"));
  var search = document.getElementById("flip-search");
  var dir = document.getElementById("flip-dir");
  var suite = document.getElementById("flip-suite");
  var group = document.getElementById("flip-group");
  var sort = document.getElementById("flip-sort");
  var count = document.getElementById("flip-count");
  if (!search || !rows.length) { return; }
  var texts = rows.map(function () { return null; });
  var groups = {};
  rows.forEach(function (r) { groups[r.dataset.group] = true; });
  Object.keys(groups).sort().forEach(function (g) {
    var opt = document.createElement("option");
    opt.value = g;
    opt.textContent = g;
    group.appendChild(opt);
  });

  function apply() {
    var q = search.value.trim().toLowerCase();
    var d = dir.value, s = suite.value, g = group.value, shown = 0;
    var filtered = Boolean(q || d || s || g);
    rows.forEach(function (r, i) {
      var ok = (!d || r.dataset.dir === d) && (!s || r.dataset.suite === s) && (!g || r.dataset.group === g);
      if (ok && q) {
        if (texts[i] === null) { texts[i] = r.textContent.toLowerCase(); }
        ok = texts[i].indexOf(q) !== -1;
      }
      r.hidden = !ok;
      if (ok) { shown += 1; }
    });
    blocks.forEach(function (b) {
      var all = b.querySelectorAll("article.flip").length;
      var visible = b.querySelectorAll("article.flip:not([hidden])").length;
      var label = b.querySelector("summary .shown");
      b.hidden = filtered && visible === 0;
      b.open = filtered && visible > 0;
      if (label) { label.textContent = filtered ? "· showing " + visible + " of " + all : ""; }
    });
    count.textContent = "showing " + shown + " of " + rows.length;
  }

  function keyOf(r) {
    var item = r.dataset.item, dirKey = r.dataset.dir === "down" ? "0" : "1";
    if (sort.value === "item") { return [item, ""]; }
    if (sort.value === "dir") { return [dirKey, r.dataset.group + "\u0000" + item]; }
    return [r.dataset.group, dirKey + "\u0000" + item];
  }

  function reorder() {
    document.querySelectorAll(".flip-list").forEach(function (list) {
      var items = Array.prototype.slice.call(list.children);
      items.sort(function (a, b) {
        var ka = keyOf(a), kb = keyOf(b);
        return ka[0].localeCompare(kb[0], undefined, {numeric: true}) ||
               ka[1].localeCompare(kb[1], undefined, {numeric: true});
      });
      items.forEach(function (el) { list.appendChild(el); });
    });
  }

  var timer = null;
  search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 150); });
  dir.addEventListener("change", apply);
  suite.addEventListener("change", apply);
  group.addEventListener("change", apply);
  sort.addEventListener("change", reorder);
  document.querySelectorAll("a.group-link").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      ev.preventDefault();
      group.value = a.dataset.group;
      apply();
    });
  });
  apply();
})();
