// "PNG" beside a server-drawn chart (templates/core/_chart.html): the inline SVG is drawn on
// a canvas at twice its size and downloaded. The SVG carries its own colours and fonts, so
// the picture is the page's. Without JavaScript the button stays hidden and the SVG link works.
(function () {
  function download(button) {
    const svg = button.closest("figure").querySelector("svg");
    const scale = 2;
    const width = svg.width.baseVal.value, height = svg.height.baseVal.value;
    const data = new XMLSerializer().serializeToString(svg);
    const image = new Image();
    image.onload = function () {
      const canvas = document.createElement("canvas");
      canvas.width = width * scale;
      canvas.height = height * scale;
      const context = canvas.getContext("2d");
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.drawImage(image, 0, 0, canvas.width, canvas.height);
      const link = document.createElement("a");
      link.download = button.dataset.chartPng;
      link.href = canvas.toDataURL("image/png");
      document.body.appendChild(link);
      link.click();
      link.remove();
    };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(data);
  }
  function arm(root) {
    root.querySelectorAll("[data-chart-png]").forEach(function (button) {
      button.hidden = false;
      if (!button.dataset.armed) {
        button.dataset.armed = "1";
        button.addEventListener("click", function () { download(button); });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { arm(document); });
  document.addEventListener("htmx:afterSettle", function (event) { arm(event.target); });
})();
