// opmail's only script: CSRF for htmx, toasts, select-all. No inline handlers anywhere (CSP).
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function showToast(message, category) {
    var box = document.getElementById("opmail-toasts");
    if (!box) return;
    var toast = document.createElement("div");
    toast.className = "alert alert-" + (category === "error" ? "danger" : category || "success");
    toast.textContent = message; // text, never HTML: messages can quote user input
    box.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 6000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      // A back/forward restore must get the full page, not a fragment.
      htmx.config.historyRestoreAsHxRequest = false;
    }
  });

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  document.addEventListener("opmail:toast", function (event) {
    showToast(event.detail.message, event.detail.category);
  });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    showToast(status === 400 ? "The page expired: reload it and try again." : "The request failed (" + status + ").", "error");
  });

  // <input type="checkbox" data-select-all="name"> ticks every checkbox called `name` in its form.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-select-all]")) return;
    var scope = box.form || document;
    scope.querySelectorAll('input[type="checkbox"][name="' + box.dataset.selectAll + '"]').forEach(function (cb) {
      cb.checked = box.checked;
    });
  });
})();
