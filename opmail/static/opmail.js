// opmail's only script: CSRF for htmx, toasts, select-all. No inline handlers anywhere (CSP).
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // A toast goes on its own after a while (an error only when dismissed), or at once with its
  // close button or Escape.
  function showToast(message, category) {
    var box = document.getElementById("opmail-toasts");
    if (!box) return;
    var toast = document.createElement("div");
    toast.className = "alert alert-" + (category === "error" ? "danger" : category || "success");
    var text = document.createElement("span");
    text.textContent = message; // text, never HTML: messages can quote user input
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.setAttribute("aria-label", "Dismiss message");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { toast.remove(); });
    toast.appendChild(text);
    toast.appendChild(close);
    box.appendChild(toast);
    if (category !== "error") setTimeout(function () { toast.remove(); }, 8000);
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    // The domain picker's Escape closes its list; it is not meant for the toasts.
    if (event.target.closest && event.target.closest(".opmail-domain-picker")) return;
    var toasts = document.querySelectorAll("#opmail-toasts .alert");
    if (toasts.length) toasts[toasts.length - 1].remove();
  });

  // <form data-confirm="question">: ask before it is sent (with or without htmx). Capture phase:
  // a refusal stops the event before htmx's own submit handler sees it.
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // The filter form shows what the table shows: after Back/Forward (htmx's history restore or the
  // browser's own page cache) its fields are set again from the address bar.
  function syncFiltersFromUrl() {
    var form = document.getElementById("opmail-account-filters");
    if (!form) return;
    var params = new URLSearchParams(window.location.search);
    var q = form.querySelector('input[name="q"]');
    if (q) q.value = params.get("q") || "";
    ["status", "twofa"].forEach(function (name) {
      var select = form.querySelector('select[name="' + name + '"]');
      if (select) select.value = params.get(name) || "";
    });
    var near = form.querySelector('input[name="near_quota"]');
    if (near) near.checked = params.get("near_quota") === "1";
  }

  document.addEventListener("htmx:historyRestore", syncFiltersFromUrl);
  window.addEventListener("popstate", function () { setTimeout(syncFiltersFromUrl, 0); });
  window.addEventListener("pageshow", syncFiltersFromUrl);

  // Flask-Admin's navbar keeps the brand inside the menu that collapses on a phone: move it out,
  // beside the toggle button, so it stays visible at every width.
  function brandOutside() {
    var nav = document.querySelector("nav.navbar");
    var brand = nav && nav.querySelector(".navbar-collapse .navbar-brand");
    if (brand) nav.insertBefore(brand, nav.firstChild);
  }

  // In the accounts table, B goes back to the Bulk Actions (no tabbing back through every row).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "b" && event.key !== "B") return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (!target.closest || !target.closest("#opmail-accounts-table tbody")) return;
    var select = document.getElementById("opmail-bulk-action");
    if (select) {
      event.preventDefault();
      select.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    brandOutside();
    syncFiltersFromUrl();
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

// The domain picker (_macros.html domain_select, above 200 domains): a combobox whose listbox htmx
// fills from the view's domain_options_view as the admin types. Arrows move, Enter or a click picks,
// Escape closes (then restores the domain in force). Picking fills the text field and triggers
// "opmail:domain-picked" on the wrapper, whose hx-get reloads the rows with the whole filter form;
// leaving the field without picking restores the domain in force. Back/Forward: from the URL.
(function () {
  "use strict";

  function parts(element) {
    var picker = element && element.closest && element.closest("[data-domain-picker]");
    if (!picker) return null;
    var input = picker.querySelector("input");
    return { picker: picker, input: input, list: document.getElementById(input.getAttribute("aria-controls")) };
  }

  function options(p) {
    return Array.prototype.slice.call(p.list.querySelectorAll('[role="option"]:not([aria-disabled])'));
  }

  function committed(p) {
    return p.input.dataset.committed !== undefined ? p.input.dataset.committed : p.input.defaultValue;
  }

  function close(p) {
    p.list.hidden = true;
    p.input.setAttribute("aria-expanded", "false");
    p.input.removeAttribute("aria-activedescendant");
  }

  function highlight(p, index) {
    var all = options(p);
    all.forEach(function (option, i) { option.setAttribute("aria-selected", i === index ? "true" : "false"); });
    if (index < 0 || index >= all.length) { p.input.removeAttribute("aria-activedescendant"); return; }
    p.input.setAttribute("aria-activedescendant", all[index].id);
    all[index].scrollIntoView({ block: "nearest" });
  }

  function active(p) {
    var all = options(p);
    for (var i = 0; i < all.length; i++) if (all[i].getAttribute("aria-selected") === "true") return i;
    return -1;
  }

  function pick(p, value) {
    p.input.value = value;
    p.input.dataset.committed = value;
    p.input.dataset.picked = "1";  // choices asked for before the pick must not reopen the list
    close(p);
    if (window.htmx) htmx.trigger(p.picker, "opmail:domain-picked");
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var p = parts(event.target);
    if (!p || event.target !== p.list) return;
    options(p).forEach(function (option, i) { option.id = p.list.id + "-" + i; });
    // Answered after the admin moved on, or picked meanwhile.
    if (document.activeElement !== p.input || p.input.dataset.picked) return close(p);
    p.list.hidden = false;
    p.input.setAttribute("aria-expanded", "true");
    highlight(p, -1);
  });

  document.addEventListener("keydown", function (event) {
    var p = parts(event.target);
    if (!p || event.target !== p.input) return;
    var all = options(p), index = active(p), open = !p.list.hidden;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!open) {
        delete p.input.dataset.picked;
        if (all.length) { p.list.hidden = false; p.input.setAttribute("aria-expanded", "true"); }
        else if (window.htmx) htmx.trigger(p.input, "focus");
        return;
      }
      var step = event.key === "ArrowDown" ? 1 : -1;
      highlight(p, Math.max(0, Math.min(all.length - 1, index + step)));
    } else if (event.key === "Enter") {
      // Without JS the form submits the typed name; here the highlighted domain (or the typed text).
      event.preventDefault();
      pick(p, open && index >= 0 ? all[index].dataset.value : p.input.value.trim());
    } else if (event.key === "Escape") {
      event.preventDefault();  // a search field would clear itself
      if (open) close(p);
      else p.input.value = committed(p);
    }
  });

  document.addEventListener("focusin", function (event) {
    var p = parts(event.target);
    if (p && event.target === p.input) delete p.input.dataset.picked;
  });

  document.addEventListener("input", function (event) {
    var p = parts(event.target);
    if (p && event.target === p.input) delete p.input.dataset.picked;
    // Emptied (typed away or the field's clear button): all domains, at once.
    if (p && event.target === p.input && p.input.value === "" && committed(p) !== "") pick(p, "");
  });

  // mousedown, not click: the text field must not lose focus (and the choice) first.
  document.addEventListener("mousedown", function (event) {
    var option = event.target.closest && event.target.closest('[data-domain-picker] [role="option"]');
    if (!option) return;
    event.preventDefault();
    if (option.dataset.value !== undefined) pick(parts(option), option.dataset.value);
  });

  document.addEventListener("focusout", function (event) {
    var p = parts(event.target);
    if (!p || event.target !== p.input) return;
    close(p);
    p.input.value = committed(p);  // typed but not picked: the domain in force stays
  });

  // Back/Forward: the restored page shows the filter of its URL (a snapshot holds stale values).
  document.addEventListener("htmx:historyRestore", function () {
    var domain = new URLSearchParams(window.location.search).get("domain") || "";
    document.querySelectorAll("[data-domain-filter]").forEach(function (field) {
      field.value = domain;
      if (field.tagName === "INPUT") { field.dataset.committed = domain; close(parts(field)); }
    });
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
