// Keyboard labeling: 1 / 2 label and save, 3-0 tick reasons, s skip, u undo, arrows move,
// ? cheat sheet, Esc leaves the comment box.
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
  const reasons = form.querySelectorAll("input[name=reasons]");
  const tick = (index) => {
    if (reasons[index]) reasons[index].checked = !reasons[index].checked;
  };
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
      default: {
        const index = "34567890".indexOf(event.key);
        if (event.key.length !== 1 || index < 0) return;
        tick(index);
      }
    }
    event.preventDefault();
  });
})();

// Settling a disputed item: 1 / 2 decide (the form asks to confirm), Esc leaves the note.
(() => {
  const form = document.getElementById("settle-form");
  if (!form) return;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("textarea, input")) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const value = { 1: "weak_sufficient", 2: "strong_needed" }[event.key];
    if (!value) return;
    event.preventDefault();
    form.requestSubmit(form.querySelector(`button[value="${value}"]`));
  });
})();
