/* Keyboard and pointer help for Garrison's labeling forms.
 *
 * The forms work without this script: it only fills in the same fields. Number keys pick a
 * class, span type, box label or preference; Enter submits; S skips. On span tasks a mouse
 * selection (or one made with the arrow keys on the focused text, then A) adds a span of the
 * chosen type, with offsets counted in characters (code points) of the record's text, as the
 * server keeps them. On box tasks a drag on the image adds a box in the image's own pixels.
 * Spans and boxes are kept in the form's hidden "span" and "box" fields.
 */
(function () {
  "use strict";
  var form = document.getElementById("label-form");
  if (!form) { return; }
  var type = form.getAttribute("data-task-type");
  var multi = form.getAttribute("data-multi") === "1";
  var review = form.classList.contains("review-fix");
  // A submitted label is shown read-only: nothing to pick, select or draw.
  if (!review && !document.getElementById("submit-label")) { return; }

  function typing(target) {
    if (!target || !target.tagName) { return false; }
    var tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable) { return true; }
    if (tag === "INPUT") {
      return ["radio", "checkbox", "button", "submit", "hidden"].indexOf(target.type) < 0;
    }
    return false;
  }

  function press(id) {
    var button = document.getElementById(id);
    if (!button) { return; }
    if (form.contains(button) && form.requestSubmit) { form.requestSubmit(button); }
    else { button.click(); }
  }

  function choices(name) { return form.querySelectorAll('input[name="' + name + '"]'); }

  function pick(n) {
    var name = { classification: "value", preference: "value", spans: "new_type", boxes: "new_label" }[type];
    if (!name) { return; }
    var inputs = choices(name);
    var input = inputs[n - 1];
    if (!input || input.disabled) { return; }
    if (type === "classification" && multi) { input.checked = !input.checked; }
    else { input.checked = true; }
  }

  // -- spans ----------------------------------------------------------------------------------

  var text = document.getElementById("span-text");
  var chars = text ? Array.from(text.textContent) : [];
  var spans = [];
  var caret = 0;
  var anchor = 0;

  function readFields(name) {
    return Array.prototype.map.call(choices(name), function (input) { return input.value; });
  }

  function currentType(name) {
    var checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : "";
  }

  function codePoints(node, offset) {
    var range = document.createRange();
    range.setStart(text, 0);
    range.setEnd(node, offset);
    return Array.from(range.toString()).length;
  }

  function addSpan(start, end) {
    while (start < end && /\s/.test(chars[start])) { start += 1; }
    while (end > start && /\s/.test(chars[end - 1])) { end -= 1; }
    var kind = currentType("new_type");
    if (start >= end || !kind) { return; }
    spans.push({ start: start, end: end, type: kind });
    spans.sort(function (a, b) { return a.start - b.start || a.end - b.end; });
    renderSpans();
  }

  function renderSpans() {
    var cuts = [0, chars.length];
    spans.forEach(function (s) { cuts.push(s.start, s.end); });
    cuts = cuts.filter(function (v, i, all) { return all.indexOf(v) === i; }).sort(function (a, b) { return a - b; });
    text.textContent = "";
    for (var i = 0; i + 1 < cuts.length; i += 1) {
      var piece = chars.slice(cuts[i], cuts[i + 1]).join("");
      var covering = spans.filter(function (s) { return s.start <= cuts[i] && cuts[i + 1] <= s.end; });
      var el = document.createElement(covering.length ? "mark" : "span");
      if (covering.length) {
        var kinds = covering.map(function (s) { return s.type; });
        el.className = "span-mark";
        el.setAttribute("data-types", kinds.join(" "));
        el.title = kinds.join(", ");
      }
      el.textContent = piece;
      text.appendChild(el);
    }
    var list = document.getElementById("span-list");
    list.textContent = "";
    spans.forEach(function (s, index) {
      var item = document.createElement("li");
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = "span";
      field.value = s.start + "," + s.end + "," + s.type;
      var kind = document.createElement("span");
      kind.className = "span-type";
      kind.textContent = s.type;
      var quote = document.createElement("q");
      quote.textContent = chars.slice(s.start, s.end).join("");
      var where = document.createElement("span");
      where.className = "help";
      where.textContent = s.start + "\u2013" + s.end;
      item.append(field, kind, " ", quote, " ", where);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-span";
      remove.textContent = "Remove";
      remove.addEventListener("click", function () { spans.splice(index, 1); renderSpans(); });
      item.append(" ", remove);
      list.appendChild(item);
    });
    var none = document.getElementById("no-spans");
    if (none) { none.hidden = spans.length > 0; }
  }

  function showSelection() {
    var lo = Math.min(anchor, caret);
    var hi = Math.max(anchor, caret);
    var range = document.createRange();
    var start = locate(lo);
    var end = locate(hi);
    range.setStart(start.node, start.offset);
    range.setEnd(end.node, end.offset);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function locate(point) {
    // The DOM position of the code point offset ``point`` inside the text.
    var walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
    var seen = 0;
    var node = walker.nextNode();
    var last = null;
    while (node) {
      var cps = Array.from(node.data);
      if (seen + cps.length >= point) {
        return { node: node, offset: cps.slice(0, point - seen).join("").length };
      }
      seen += cps.length;
      last = node;
      node = walker.nextNode();
    }
    return last ? { node: last, offset: last.data.length } : { node: text, offset: 0 };
  }

  function wordStep(from, direction) {
    var i = from;
    if (direction > 0) {
      while (i < chars.length && /\s/.test(chars[i])) { i += 1; }
      while (i < chars.length && !/\s/.test(chars[i])) { i += 1; }
    } else {
      while (i > 0 && /\s/.test(chars[i - 1])) { i -= 1; }
      while (i > 0 && !/\s/.test(chars[i - 1])) { i -= 1; }
    }
    return i;
  }

  if (text) {
    readFields("span").forEach(function (value) {
      var parts = value.split(",");
      spans.push({ start: Number(parts[0]), end: Number(parts[1]), type: parts.slice(2).join(",") });
    });
    renderSpans();
    text.addEventListener("mouseup", function () {
      var selection = window.getSelection();
      if (!selection || selection.isCollapsed || selection.rangeCount === 0) { return; }
      var range = selection.getRangeAt(0);
      if (!text.contains(range.startContainer) || !text.contains(range.endContainer)) { return; }
      addSpan(codePoints(range.startContainer, range.startOffset), codePoints(range.endContainer, range.endOffset));
      selection.removeAllRanges();
    });
    text.addEventListener("keydown", function (event) {
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        event.preventDefault();
        var direction = event.key === "ArrowRight" ? 1 : -1;
        caret = event.ctrlKey ? wordStep(caret, direction) : Math.max(0, Math.min(chars.length, caret + direction));
        if (!event.shiftKey) { anchor = caret; }
        showSelection();
      } else if (event.key === "Home" || event.key === "End") {
        event.preventDefault();
        caret = event.key === "Home" ? 0 : chars.length;
        if (!event.shiftKey) { anchor = caret; }
        showSelection();
      } else if ((event.key === "a" || event.key === "A") && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        event.stopPropagation();
        addSpan(Math.min(anchor, caret), Math.max(anchor, caret));
        anchor = caret;
      }
    });
  }

  // -- boxes ----------------------------------------------------------------------------------

  var image = document.getElementById("box-image");
  var overlay = document.getElementById("box-overlay");
  var boxes = [];
  var drag = null;

  function scale() { return image.clientWidth ? image.naturalWidth / image.clientWidth : 1; }

  function place(el, box) {
    var s = scale();
    el.style.left = box.x / s + "px";
    el.style.top = box.y / s + "px";
    el.style.width = box.w / s + "px";
    el.style.height = box.h / s + "px";
  }

  function round(v) { return Math.round(v * 10) / 10; }

  function renderBoxes() {
    if (overlay) {
      overlay.textContent = "";
      boxes.forEach(function (box) {
        var el = document.createElement("div");
        el.className = "drawn-box";
        el.setAttribute("data-label", box.label);
        el.title = box.label;
        place(el, box);
        overlay.appendChild(el);
      });
    }
    var list = document.getElementById("box-list");
    if (!list) { return; }
    list.textContent = "";
    boxes.forEach(function (box, index) {
      var item = document.createElement("li");
      var field = document.createElement("input");
      field.type = "hidden";
      field.name = "box";
      field.value = [box.x, box.y, box.w, box.h, box.label].join(",");
      var label = document.createElement("span");
      label.className = "box-label";
      label.textContent = box.label;
      var where = document.createElement("span");
      where.className = "help";
      where.textContent = "x " + box.x + ", y " + box.y + ", " + box.w + "\u00d7" + box.h;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-box";
      remove.textContent = "Remove";
      remove.addEventListener("click", function () { boxes.splice(index, 1); renderBoxes(); });
      item.append(field, label, " ", where, " ", remove);
      list.appendChild(item);
    });
    var none = document.getElementById("no-boxes");
    if (none) { none.hidden = boxes.length > 0; }
  }

  function pointAt(event) {
    var rect = overlay.getBoundingClientRect();
    var s = scale();
    return {
      x: Math.max(0, Math.min(image.naturalWidth, (event.clientX - rect.left) * s)),
      y: Math.max(0, Math.min(image.naturalHeight, (event.clientY - rect.top) * s))
    };
  }

  if (document.getElementById("box-list")) {
    readFields("box").forEach(function (value) {
      var parts = value.split(",");
      boxes.push({ x: Number(parts[0]), y: Number(parts[1]), w: Number(parts[2]), h: Number(parts[3]), label: parts.slice(4).join(",") });
    });
    renderBoxes();
  }
  if (image && overlay) {
    image.addEventListener("load", renderBoxes);
    window.addEventListener("resize", renderBoxes);
    overlay.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      overlay.setPointerCapture(event.pointerId);
      var el = document.createElement("div");
      el.className = "drawn-box drawing";
      overlay.appendChild(el);
      drag = { from: pointAt(event), el: el };
    });
    overlay.addEventListener("pointermove", function (event) {
      if (!drag) { return; }
      var to = pointAt(event);
      place(drag.el, {
        x: Math.min(drag.from.x, to.x), y: Math.min(drag.from.y, to.y),
        w: Math.abs(to.x - drag.from.x), h: Math.abs(to.y - drag.from.y)
      });
    });
    overlay.addEventListener("pointerup", function (event) {
      if (!drag) { return; }
      var to = pointAt(event);
      var from = drag.from;
      drag = null;
      var box = {
        x: round(Math.min(from.x, to.x)), y: round(Math.min(from.y, to.y)),
        w: round(Math.abs(to.x - from.x)), h: round(Math.abs(to.y - from.y)),
        label: currentType("new_label")
      };
      if (box.w >= 2 && box.h >= 2 && box.label) { boxes.push(box); }
      renderBoxes();
    });
  }

  // -- keys -----------------------------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.metaKey) { return; }
    if (event.key === "Enter" && event.ctrlKey && type === "answer" && !review) {
      event.preventDefault();
      press("submit-label");
      return;
    }
    if (event.ctrlKey || typing(event.target)) { return; }
    if (event.key === "Enter" && !review) {
      if (event.target && event.target.tagName === "BUTTON") { return; }
      event.preventDefault();
      press("submit-label");
    } else if ((event.key === "s" || event.key === "S") && !review) {
      event.preventDefault();
      press("skip-task");
    } else if (/^[1-9]$/.test(event.key)) {
      event.preventDefault();
      pick(Number(event.key));
    }
  });
}());
