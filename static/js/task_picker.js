// The evaluation form's task picker (templates/evaluation/_task_picker.html): a ticked search
// result moves into "Chosen tasks", so the next search (which leaves chosen tasks out) does
// not take it away; an unticked chosen task leaves the list. Without this script the ticked
// results are still sent with the form.
(function () {
  function picker() { return document.getElementById("task-picker"); }
  function refresh() {
    const chosen = document.querySelector("#chosen-tasks .task-list");
    const count = chosen.querySelectorAll("li").length;
    document.querySelector("[data-chosen-count]").textContent = count;
    document.querySelector("[data-none-chosen]").hidden = count > 0;
  }
  // Enter searches (htmx) instead of leaving the page for the no-JavaScript search.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.id === "task-query") event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    const box = event.target;
    if (!picker() || box.name !== "tasks" || box.type !== "checkbox") return;
    const item = box.closest("li.task-option");
    const chosen = document.querySelector("#chosen-tasks .task-list");
    if (box.checked && !chosen.contains(item)) {
      chosen.appendChild(item);
    } else if (!box.checked && chosen.contains(item)) {
      item.remove();
    }
    refresh();
  });
})();
