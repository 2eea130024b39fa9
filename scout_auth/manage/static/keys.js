// The Settings -> API Keys page: plain ES2020, no build step, no third-party code.
//
// Configuration comes from data- attributes on <body> (the CSP allows no
// inline script): data-api (the org's API URL, ids already percent-encoded),
// data-csrf-header (the header every change must carry), data-weak-name (the
// server's weak-name pattern, matched whole and case-insensitively),
// data-page ("keys" or "key") and, on a key's page, data-org-url.
//
// Every change is a same-origin fetch with Content-Type: application/json and
// the CSRF header; errors show the problem+json "detail" in a live region.
// Tokens live in the DOM only while the token dialog is open.
"use strict";

(() => {
  const body = document.body;
  const config = {
    api: body.dataset.api || "",
    csrfHeader: body.dataset.csrfHeader || "x-scout-auth-request",
    page: body.dataset.page || "",
    orgUrl: body.dataset.orgUrl || "",
  };
  const weakName = body.dataset.weakName
    ? new RegExp(`^(?:${body.dataset.weakName})$`, "i")
    : null;

  const STATUS_LABELS = {
    active: "Active",
    disabled: "Disabled",
    expired: "Expired",
    rotation_grace: "Rotated, in grace",
    expires_soon: "Expires soon",
  };

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // ---- Messages --------------------------------------------------------

  const pageAlert = $("#page-alert");
  const pageStatus = $("#page-status");

  function showError(message, region) {
    const target = region || pageAlert;
    if (!target) return;
    target.textContent = message;
    target.hidden = false;
  }

  function clearError(region) {
    const target = region || pageAlert;
    if (!target) return;
    target.textContent = "";
    if (target === pageAlert) target.hidden = true;
  }

  function announce(message) {
    if (pageStatus) pageStatus.textContent = message;
  }

  /** The sentence to show for a failed call: the problem's detail, then each field error. */
  function problemText(error) {
    const problem = error.problem || {};
    const parts = [problem.detail || error.message];
    for (const item of problem.errors || []) {
      const text = item.field ? `${item.field}: ${item.message}` : item.message;
      if (item.message && !parts.includes(text) && !parts.includes(item.message)) parts.push(text);
    }
    return parts.join(" ");
  }

  // ---- The API ---------------------------------------------------------

  /** A state-changing call to the org's API; resolves to the JSON answer (null for 204). */
  async function call(method, path, data) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    headers[config.csrfHeader] = "1";
    let response;
    try {
      response = await fetch(config.api + path, {
        method,
        headers,
        credentials: "same-origin",
        body: data === undefined ? undefined : JSON.stringify(data),
      });
    } catch (_) {
      throw new Error("The server could not be reached; check your connection and try again.");
    }
    if (response.status === 204) return null;
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      const error = new Error((payload && payload.detail) || `The request failed (HTTP ${response.status}).`);
      error.problem = payload;
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  const keyPath = (id) => `/keys/${encodeURIComponent(id)}`;

  // ---- Dialogs ---------------------------------------------------------

  /** Open ``dialog`` modally, focus its first field, give focus back to ``opener`` on close. */
  function openDialog(dialog, opener) {
    dialog.opener = opener || document.activeElement;
    for (const region of $$(".dialog-error", dialog)) region.textContent = "";
    dialog.showModal();
    const first = $(
      "[autofocus], input:not([type=hidden]):not([disabled]), textarea:not([readonly]), select, button:not([disabled])",
      dialog,
    );
    if (first) first.focus();
  }

  for (const dialog of $$("dialog")) {
    dialog.addEventListener("close", () => {
      const opener = dialog.opener;
      dialog.opener = null;
      if (opener && document.contains(opener) && typeof opener.focus === "function") opener.focus();
    });
    for (const button of $$(".js-close", dialog)) {
      button.addEventListener("click", () => dialog.close());
    }
    // Escape closes a modal <dialog> natively (the "cancel" event).
  }

  /** Disable a form's submit button while its call runs (no double submission). */
  async function busy(form, work) {
    const submit = $("[type=submit]", form);
    if (submit) submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      form.removeAttribute("aria-busy");
      if (submit) submit.disabled = false;
    }
  }

  // ---- Field helpers ---------------------------------------------------

  /** Space- or comma-separated words. */
  function words(text) {
    return text.split(/[\s,]+/).filter(Boolean);
  }

  const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

  function validIPv6(address) {
    if (!address.includes(":") || !/^[0-9a-fA-F:.]+$/.test(address)) return false;
    try {
      new URL(`http://[${address}]/`);
      return true;
    } catch (_) {
      return false;
    }
  }

  /** The problem with one allowlist entry, or "" (the server checks again). */
  function cidrProblem(entry) {
    const [address, prefix, extra] = entry.split("/");
    if (extra !== undefined) return `${entry} is not an address or CIDR range`;
    const v4 = IPV4.test(address);
    if (!v4 && !validIPv6(address)) return `${entry} is not an IP address or CIDR range`;
    if (prefix !== undefined) {
      const max = v4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
        return `${entry}: the prefix length must be 0 to ${max}`;
      }
    }
    return "";
  }

  /** The allowlist of a textarea (null: any address), or throws with the first problem. */
  function readAllowlist(textarea, errorBox) {
    const entries = textarea.value.split(/[\s,]+/).filter(Boolean);
    const problems = entries.map(cidrProblem).filter(Boolean);
    errorBox.textContent = problems.join("; ");
    textarea.setAttribute("aria-invalid", problems.length ? "true" : "false");
    if (problems.length) {
      textarea.focus();
      throw new Error(problems[0]);
    }
    return entries.length ? entries : null;
  }

  function checkAllowlistAsTyped(textarea, errorBox) {
    textarea.addEventListener("input", () => {
      if (textarea.getAttribute("aria-invalid") !== "true") return;
      const problems = words(textarea.value).map(cidrProblem).filter(Boolean);
      errorBox.textContent = problems.join("; ");
      textarea.setAttribute("aria-invalid", problems.length ? "true" : "false");
    });
    textarea.addEventListener("blur", () => {
      const problems = words(textarea.value).map(cidrProblem).filter(Boolean);
      errorBox.textContent = problems.join("; ");
      textarea.setAttribute("aria-invalid", problems.length ? "true" : "false");
    });
  }

  function checkedValue(form, name) {
    const input = $(`input[name="${name}"]:checked`, form);
    return input ? input.value : null;
  }

  /** A call failed inside a form: say why, in the form's alert region. */
  function formFailed(form, error) {
    showError(problemText(error), $(".dialog-error", form));
  }

  // ---- Status badges and switches --------------------------------------

  function setStatus(container, status) {
    for (const badge of $$(".badge[data-status]", container)) {
      badge.className = `badge badge-${status}`;
      badge.dataset.status = status;
      badge.textContent = STATUS_LABELS[status] || status;
    }
  }

  /** The element holding a key's data-key-id / data-key-name for a control. */
  const keyOf = (element) => element.closest("[data-key-id]");

  for (const toggle of $$(".js-enable")) {
    toggle.addEventListener("change", async () => {
      const holder = keyOf(toggle);
      const wanted = toggle.checked;
      toggle.disabled = true;
      clearError();
      try {
        const key = await call("POST", `${keyPath(holder.dataset.keyId)}/${wanted ? "enable" : "disable"}`);
        setStatus(config.page === "key" ? document : holder, key.status);
        const text = $(".switch-text", toggle.parentElement);
        if (text) text.textContent = key.enabled ? "On" : "Off";
        announce(`${holder.dataset.keyName} is now ${key.enabled ? "enabled" : "disabled"}.`);
      } catch (error) {
        toggle.checked = !wanted;
        showError(problemText(error));
      } finally {
        toggle.disabled = false;
      }
    });
  }

  const legacySwitch = $("#legacy-switch");
  if (legacySwitch) {
    legacySwitch.addEventListener("change", async () => {
      const wanted = legacySwitch.checked;
      legacySwitch.disabled = true;
      clearError();
      try {
        const status = await call("POST", `/legacy/${wanted ? "enable" : "disable"}`);
        const state = $("#legacy-state");
        state.className = `badge badge-${status.enabled ? "active" : "disabled"}`;
        state.textContent = status.enabled ? "Accepted" : "Switched off";
        announce(status.enabled ? "The legacy key is accepted again." : "The legacy key is switched off.");
      } catch (error) {
        legacySwitch.checked = !wanted;
        showError(problemText(error));
      } finally {
        legacySwitch.disabled = false;
      }
    });
  }

  // ---- The token, shown once -------------------------------------------

  const tokenDialog = $("#token-dialog");

  function showToken(token, opener, rotation, title, recoverable) {
    $("#token-once").hidden = Boolean(recoverable);
    $("#token-recoverable").hidden = !recoverable;
    $("#token-value").value = token;
    $("#token-export").value = `export SCOUT_API_KEY=${token}`;
    $(".copied", tokenDialog).textContent = "";
    $("#token-title").textContent =
      title || (rotation ? "Your rotated API key" : "Your new API key");
    const note = $("#token-rotation");
    note.hidden = !rotation;
    note.textContent = rotation || "";
    openDialog(tokenDialog, opener);
    $("#token-value").select();
  }

  if (tokenDialog) {
    tokenDialog.addEventListener("close", () => {
      // Forget the token, then show the list as it is now.
      $("#token-value").value = "";
      $("#token-export").value = "";
      window.location.reload();
    });
    for (const button of $$(".js-copy", tokenDialog)) {
      button.addEventListener("click", async () => {
        const field = document.getElementById(button.dataset.copy);
        const done = $(".copied", tokenDialog);
        try {
          await navigator.clipboard.writeText(field.value);
          done.textContent = "Copied to the clipboard.";
        } catch (_) {
          field.select();
          const copied = document.execCommand && document.execCommand("copy");
          done.textContent = copied ? "Copied to the clipboard." : "Select the text and copy it yourself.";
        }
      });
    }
  }

  // ---- Create ----------------------------------------------------------

  const createDialog = $("#create-dialog");
  const createForm = $("#create-form");
  const createOpen = $("#create-open");

  if (createDialog && createForm && createOpen) {
    const name = $("#create-name");
    const warning = $("#create-name-warning");
    const ips = $("#create-ips");
    const ipsError = $("#create-ips-error");
    checkAllowlistAsTyped(ips, ipsError);

    name.addEventListener("input", () => {
      const value = name.value.trim();
      warning.textContent =
        weakName && value && weakName.test(value)
          ? `"${value}" does not say what the key is for. Name it after the integration that uses it, e.g. "billing-sync prod".`
          : "";
    });

    createOpen.addEventListener("click", () => openDialog(createDialog, createOpen));

    createForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = $(".dialog-error", createForm);
      errorBox.textContent = "";
      if (!name.value.trim()) {
        errorBox.textContent = "A name is required.";
        name.setAttribute("aria-invalid", "true");
        name.focus();
        return;
      }
      name.removeAttribute("aria-invalid");
      let allowed;
      try {
        allowed = readAllowlist(ips, ipsError);
      } catch (error) {
        errorBox.textContent = error.message;
        return;
      }
      const recoverable = $("#create-recoverable");
      const data = {
        recoverable: Boolean(recoverable && recoverable.checked),
        name: name.value.trim(),
        description: $("#create-description").value.trim(),
        roles: $$('input[name="role"]:checked', createForm).map((box) => box.value),
      };
      if ($("#create-unrestricted").checked) {
        data.scopes = null;
      } else {
        const picked = $$('input[name="scope"]:checked', createForm).map((box) => box.value);
        data.scopes = Array.from(new Set([...picked, ...words($("#create-extra-scopes").value)]));
      }
      if (allowed) data.allowed_ips = allowed;
      const expiry = checkedValue(createForm, "expiry");
      if (expiry && expiry !== "never") data.expires_in_days = Number(expiry);
      await busy(createForm, async () => {
        try {
          const created = await call("POST", "/keys", data);
          createForm.reset();
          warning.textContent = "";
          createDialog.close();
          showToken(created.token, createOpen, "", "", created.key.recoverable);
        } catch (error) {
          formFailed(createForm, error);
        }
      });
    });
  }

  // ---- Rotate ----------------------------------------------------------

  const rotateDialog = $("#rotate-dialog");
  const rotateForm = $("#rotate-form");
  let rotating = null;

  function nameInto(dialog, keyName) {
    for (const slot of $$(".js-key-name", dialog)) slot.textContent = keyName;
  }

  for (const button of $$(".js-rotate")) {
    button.addEventListener("click", () => {
      rotating = { holder: keyOf(button), opener: button };
      nameInto(rotateDialog, rotating.holder.dataset.keyName);
      openDialog(rotateDialog, button);
    });
  }

  if (rotateForm) {
    rotateForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!rotating) return;
      const grace = Number(checkedValue(rotateForm, "grace_seconds") || 0);
      const { holder, opener } = rotating;
      await busy(rotateForm, async () => {
        try {
          const rotated = await call("POST", `${keyPath(holder.dataset.keyId)}/rotate`, {
            grace_seconds: grace,
          });
          rotateDialog.close();
          const until = rotated.previous && rotated.previous.expires_at;
          const note =
            grace > 0 && until
              ? `Both keys work until ${new Date(until).toLocaleString()} (the end of the grace period). ` +
                `Switch every client to this new key before then; after it, only the new key works.`
              : "The old key stopped working now: only this new key works.";
          showToken(rotated.token, opener, note, "", rotated.key.recoverable);
        } catch (error) {
          formFailed(rotateForm, error);
        }
      });
    });
  }

  // ---- Delete ----------------------------------------------------------

  const deleteDialog = $("#delete-dialog");
  const deleteForm = $("#delete-form");
  let deleting = null;

  if (deleteForm) {
    const confirm = $("#delete-confirm");
    const submit = $("[type=submit]", deleteForm);
    confirm.addEventListener("input", () => {
      submit.disabled = !deleting || confirm.value !== deleting.holder.dataset.keyName;
    });

    for (const button of $$(".js-delete")) {
      button.addEventListener("click", () => {
        deleting = { holder: keyOf(button), opener: button };
        nameInto(deleteDialog, deleting.holder.dataset.keyName);
        confirm.value = "";
        submit.disabled = true;
        openDialog(deleteDialog, button);
      });
    }

    deleteForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!deleting || confirm.value !== deleting.holder.dataset.keyName) return;
      const { holder } = deleting;
      await busy(deleteForm, async () => {
        try {
          await call("DELETE", keyPath(holder.dataset.keyId));
          deleteDialog.close();
          if (config.page === "key") {
            window.location.assign(config.orgUrl);
          } else {
            window.location.reload();
          }
        } catch (error) {
          formFailed(deleteForm, error);
        }
      });
      submit.disabled = confirm.value !== holder.dataset.keyName;
    });
  }

  // ---- Edit (a key's page) ---------------------------------------------

  const editForm = $("#edit-form");
  if (editForm) {
    const holder = $("#key-head");
    const ips = $("#edit-ips");
    const ipsError = $("#edit-ips-error");
    checkAllowlistAsTyped(ips, ipsError);

    editForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = $(".dialog-error", editForm);
      errorBox.textContent = "";
      const name = $("#edit-name");
      if (!name.value.trim()) {
        errorBox.textContent = "A name is required.";
        name.focus();
        return;
      }
      let allowed;
      try {
        allowed = readAllowlist(ips, ipsError);
      } catch (error) {
        errorBox.textContent = error.message;
        return;
      }
      const data = {
        name: name.value.trim(),
        description: $("#edit-description").value.trim(),
        scopes: $("#edit-unrestricted").checked ? null : words($("#edit-scopes").value),
        allowed_ips: allowed,
      };
      const expiry = checkedValue(editForm, "expiry");
      if (expiry === "never") data.expires_at = null;
      else if (expiry && expiry !== "keep") data.expires_in_days = Number(expiry);
      await busy(editForm, async () => {
        try {
          await call("PATCH", keyPath(holder.dataset.keyId), data);
          window.location.reload();
        } catch (error) {
          formFailed(editForm, error);
        }
      });
    });
  }

  // ---- Times in the reader's own zone ----------------------------------

  for (const time of $$("time[datetime]")) {
    const moment = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) {
      time.title = time.textContent;
      time.textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    }
  }
  // ---- Reveal (recoverable keys, with a key vault) ----------------------

  const revealDialog = $("#reveal-dialog");
  const revealForm = $("#reveal-form");
  let revealing = null;

  if (revealForm) {
    const confirmName = $("#reveal-confirm");
    const submit = $("[type=submit]", revealForm);
    confirmName.addEventListener("input", () => {
      submit.disabled = !revealing || confirmName.value !== revealing.holder.dataset.keyName;
    });

    for (const button of $$(".js-reveal")) {
      button.addEventListener("click", () => {
        revealing = { holder: keyOf(button), opener: button };
        nameInto(revealDialog, revealing.holder.dataset.keyName);
        confirmName.value = "";
        submit.disabled = true;
        openDialog(revealDialog, button);
      });
    }

    revealForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!revealing || confirmName.value !== revealing.holder.dataset.keyName) return;
      const { holder, opener } = revealing;
      await busy(revealForm, async () => {
        try {
          const shown = await call("POST", `${keyPath(holder.dataset.keyId)}/reveal`, {
            confirm: confirmName.value,
          });
          confirmName.value = "";
          revealDialog.close();
          showToken(shown.token, opener, "This view was recorded in the audit trail.", "The API key", true);
        } catch (error) {
          formFailed(revealForm, error);
        }
      });
    });
  }
})();
