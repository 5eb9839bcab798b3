// Keyboard labeling: 1 / 2 label and save, s skip, u undo, arrows move, ? cheat sheet.
(() => {
  const root = document.getElementById("labeling");
  const form = document.getElementById("label-form");
  if (!root || !form) return;
  const sheet = document.getElementById("cheatsheet");
  const undoForm = document.getElementById("undo-form");
  // One request per page: a second key press while the first is on its way would label
  // the next item blind, or undo the label before the one meant.
  let sent = false;
  const submit = (target, submitter) => {
    if (sent || !target) return;
    sent = true;
    target.requestSubmit(submitter);
  };
  // A page restored from the back/forward cache sent nothing yet.
  window.addEventListener("pageshow", () => { sent = false; });
  const go = (url) => { if (url) window.location.assign(url); };
  const choose = (value) => {
    form.querySelector(`input[name=value][value="${value}"]`).checked = true;
    submit(form);
  };
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest("[data-toggle]");
    if (toggle) document.querySelector(toggle.dataset.toggle).hidden ^= true;
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest("textarea, input[type=text], input:not([type]), select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    switch (event.key) {
      case "1": choose("weak_sufficient"); break;
      case "2": choose("strong_needed"); break;
      case "s": submit(form, document.getElementById("skip")); break;
      case "u": submit(undoForm); break;
      case "ArrowLeft": go(root.dataset.prev); break;
      case "ArrowRight": go(root.dataset.next); break;
      case "?": sheet.hidden = !sheet.hidden; break;
      default: return;
    }
    event.preventDefault();
  });
})();
