// Keyboard for the review page. htmx does the posting and swapping; this file only maps
// keys to the buttons of the pane that is on screen (they carry data-key), so the page
// works the same with a mouse, and without JavaScript at all.
(function () {
  "use strict";

  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
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

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const pane = document.getElementById("review-pane");
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
    if ((help && help.open) || !pane) return;
    const key = event.key.toLowerCase();
    const guidelines = document.getElementById("campaign-guidelines");
    if (key === "g" && guidelines) {
      event.preventDefault();
      guidelines.open = !guidelines.open;
      return;
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
