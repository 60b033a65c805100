// Keyboard for the review page and the adjudication queue. htmx does the posting and
// swapping; this file only maps keys to the buttons on screen (they carry data-key), so the
// pages work the same with a mouse, and without JavaScript at all.
(function () {
  "use strict";

  function typing(el) {
    // A radio button (a row's verdict in the list-wise pane, after a click) is not typing.
    const text = el && el.tagName === "INPUT" && el.type !== "radio" && el.type !== "checkbox";
    return el && (text || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  function toggleHelp() {
    const help = document.getElementById("review-help");
    if (!help) return;
    if (help.open) help.close();
    else help.showModal();
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-help-toggle]")) toggleHelp();
  });

  // "Your recent answers" loads when first opened (H or a click). Listened for here, on the
  // document, rather than with hx-trigger on the element: a key pressed right after a verdict
  // could open the new pane's history before htmx had processed that element.
  document.addEventListener("toggle", function (event) {
    const details = event.target;
    if (!details.open || !details.dataset || !details.dataset.historyUrl) return;
    if (details.dataset.loaded || !window.htmx) return;
    details.dataset.loaded = "1";
    window.htmx.ajax("GET", details.dataset.historyUrl, {
      target: details.querySelector(".history-body"),
      swap: "innerHTML",
    });
  }, true);

  // --- the list-wise pane: J / K (or ↓ / ↑) move the outlined row, the verdict keys answer it
  // and move on to the next unanswered row, Enter (or the last answer) sends the list ---
  function listRows(pane) {
    return Array.prototype.slice.call(pane.querySelectorAll("[data-row]"));
  }

  function listFocus(pane, index) {
    const rows = listRows(pane);
    if (!rows.length) return;
    const at = Math.max(0, Math.min(index, rows.length - 1));
    pane.dataset.current = String(at);
    rows.forEach(function (row, i) {
      row.classList.toggle("current", i === at);
      if (i === at) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    rows[at].scrollIntoView({ block: "nearest" });
  }

  function nextUnanswered(rows, at) {
    for (let step = 1; step <= rows.length; step++) {
      const i = (at + step) % rows.length;
      if (!rows[i].querySelector("input[type=radio]:checked")) return i;
    }
    return -1;
  }

  function listKey(pane, key) {
    const form = pane.querySelector("[data-list-form]");
    if (!form) return false;
    const rows = listRows(pane);
    const at = Number(pane.dataset.current || 0);
    if (key === "j" || key === "arrowdown" || key === "k" || key === "arrowup") {
      listFocus(pane, at + (key === "j" || key === "arrowdown" ? 1 : -1));
      return true;
    }
    if (key === "enter") {
      form.requestSubmit();
      return true;
    }
    const radio = rows[at] && rows[at].querySelector('input[type=radio][data-key="' + CSS.escape(key) + '"]');
    if (!radio) return false;
    radio.checked = true;
    rows[at].classList.add("answered");
    const next = nextUnanswered(rows, at);
    if (next < 0) form.requestSubmit();  // every row answered: send the list
    else listFocus(pane, next);
    return true;
  }

  function listStart() {
    const pane = document.getElementById("review-pane");
    if (pane && pane.hasAttribute("data-listwise") && !pane.dataset.current) listFocus(pane, 0);
  }
  document.addEventListener("DOMContentLoaded", listStart);
  document.addEventListener("htmx:load", listStart);
  // A click on a row's verdict makes that row the current one.
  document.addEventListener("change", function (event) {
    const row = event.target.closest && event.target.closest("[data-row]");
    const pane = document.getElementById("review-pane");
    if (!row || !pane) return;
    row.classList.add("answered");
    listFocus(pane, listRows(pane).indexOf(row));
  });

  // --- the adjudication queue: J / K move between items, 1 / 2 decide the current one ---
  let current = 0;

  function adjudicationItems() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-adjudication-item]"));
  }

  function moveTo(index, scroll) {
    const items = adjudicationItems();
    if (!items.length) return;
    current = Math.max(0, Math.min(index, items.length - 1));
    items.forEach(function (item, i) {
      item.classList.toggle("current", i === current);
      if (i === current) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    });
    if (scroll) {
      items[current].scrollIntoView({ block: "start" });
      items[current].focus({ preventScroll: true });
    }
  }

  function adjudicationKey(event, key) {
    const items = adjudicationItems();
    if (!items.length) return false;
    if (key === "j" || key === "k") {
      moveTo(current + (key === "j" ? 1 : -1), true);
      return true;
    }
    const item = items[current];
    const field = item.querySelector('[data-field-key="' + CSS.escape(key) + '"]');
    if (field) {
      field.focus();
      return true;
    }
    const button = item.querySelector('button[data-key="' + CSS.escape(key) + '"]');
    if (button && !button.disabled) {
      button.click();
      return true;
    }
    return false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    moveTo(0, false);
  });
  // A click in an item makes it the current one.
  document.addEventListener("focusin", function (event) {
    const item = event.target.closest && event.target.closest("[data-adjudication-item]");
    if (item) moveTo(adjudicationItems().indexOf(item), false);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const pane = document.getElementById("review-pane");
    if (typing(event.target) && event.target.closest("[data-adjudication-item]")) {
      // Enter in a note must not decide (the form's first button would): leave the field.
      if (event.key === "Enter" || event.key === "Escape") {
        event.preventDefault();
        event.target.blur();
      }
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") {
        event.target.blur();
        event.preventDefault();
      } else if (event.key === "Enter" && event.target.name === "edited_query") {
        // Enter in the edit box approves the triplet as edited.
        const approve = pane && pane.querySelector('button[data-key="1"]');
        if (approve) {
          event.preventDefault();
          approve.click();
        }
      }
      return;
    }
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    const help = document.getElementById("review-help");
    if (help && help.open) return;
    const key = event.key.toLowerCase();
    // htmx wires up swapped-in content only when it settles (20 ms later, far more on a busy
    // machine). A key pressed in between would submit the new pane's form as a plain POST and
    // reload the page: wire it up now (htmx.process skips what it has already processed).
    if (window.htmx) window.htmx.process(pane || document.body);
    if (!pane) {
      if (adjudicationKey(event, key)) event.preventDefault();
      return;
    }
    const guidelines = document.getElementById("campaign-guidelines");
    if (key === "g" && guidelines) {
      event.preventDefault();
      guidelines.open = !guidelines.open;
      return;
    }
    if (pane.hasAttribute("data-listwise")) {
      if (!pane.dataset.current) listFocus(pane, 0);
      if (listKey(pane, key)) {
        event.preventDefault();
        return;
      }
    }
    const details = pane.querySelector('details[data-key="' + CSS.escape(key) + '"]');
    if (details) {
      event.preventDefault();
      details.open = true;
      const field = details.querySelector("input, textarea");
      if (field) field.focus();
      return;
    }
    const button = pane.querySelector('button[data-key="' + CSS.escape(key) + '"]');
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
})();
