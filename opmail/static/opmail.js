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
    var xhr = event.detail.xhr;
    // A refusal that explains itself (503, 429) already raised its own toast through HX-Trigger.
    if ((xhr.getResponseHeader("HX-Trigger") || "").indexOf("opmail:toast") !== -1) return;
    var status = xhr.status;
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

  // <button data-copy="ID"> copies the text of element ID. Where the clipboard API is missing or
  // refused (plain HTTP off localhost) it selects the text instead, for Ctrl+C.
  function selectForCopy(source) {
    window.getSelection().selectAllChildren(source);
    showToast("Selected: press Ctrl+C to copy.", "info");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    var source = button && document.getElementById(button.dataset.copy);
    if (!source) return;
    if (!navigator.clipboard || !window.isSecureContext) return selectForCopy(source);
    navigator.clipboard.writeText(source.textContent).then(
      function () { showToast("Copied."); },
      function () { selectForCopy(source); }
    );
  });
})();

// The Bulk Actions bar shows the extra input only for the action that needs it (quota, password).
(function () {
  "use strict";

  function showBulkFields(root) {
    var select = (root || document).querySelector("#opmail-bulk-action");
    if (!select) return;
    document.querySelectorAll("[data-bulk-for]").forEach(function (span) {
      span.hidden = span.dataset.bulkFor !== select.value;
    });
  }

  document.addEventListener("DOMContentLoaded", function () { showBulkFields(); });
  document.addEventListener("htmx:afterSwap", function () { showBulkFields(); });
  document.addEventListener("change", function (event) {
    if (event.target.id === "opmail-bulk-action") showBulkFields();
  });
})();

// <button data-generate-password="id1 id2" data-length="20" data-show="ID">: a random password of
// letters and digits from crypto.getRandomValues, put in those password fields and shown in ID
// (with its Copy button) for the admin to pass on. Nothing is sent until the form is submitted.
(function () {
  "use strict";

  var ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

  function randomPassword(length) {
    var out = "";
    var bytes = new Uint8Array(length * 2);
    while (out.length < length) {
      window.crypto.getRandomValues(bytes);
      for (var i = 0; i < bytes.length && out.length < length; i++) {
        // 248 = 4 × 62: bytes above it are dropped, so every character is equally likely.
        if (bytes[i] < 248) out += ALPHABET.charAt(bytes[i] % ALPHABET.length);
      }
    }
    return out;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-generate-password]");
    if (!button) return;
    var password = randomPassword(parseInt(button.dataset.length, 10) || 20);
    button.dataset.generatePassword.split(" ").forEach(function (id) {
      var field = document.getElementById(id);
      if (field) field.value = password;
    });
    var shown = document.getElementById(button.dataset.show);
    if (shown) {
      shown.querySelector("[data-generated-text]").textContent = password;
      shown.hidden = false;
    }
  });
})();
