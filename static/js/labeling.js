// Keyboard labeling: 1 / 2 label and save, s skip, u undo, arrows move, ? cheat sheet.
(() => {
  const root = document.getElementById("labeling");
  const form = document.getElementById("label-form");
  if (!root || !form) return;
  const sheet = document.getElementById("cheatsheet");
  const go = (url) => { if (url) window.location.assign(url); };
  const choose = (value) => {
    form.querySelector(`input[name=value][value="${value}"]`).checked = true;
    form.requestSubmit();
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
      case "s": document.getElementById("skip").click(); break;
      case "u": go(root.dataset.undo); break;
      case "ArrowLeft": go(root.dataset.prev); break;
      case "ArrowRight": go(root.dataset.next); break;
      case "?": sheet.hidden = !sheet.hidden; break;
      default: return;
    }
    event.preventDefault();
  });
})();
