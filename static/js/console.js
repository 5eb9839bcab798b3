// Small page helpers; htmx does the rest. No inline handlers: the CSP forbids them.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const done = () => { button.textContent = "Copied"; setTimeout(() => (button.textContent = "Copy markdown"), 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.value).then(done);
  } else {
    source.select();
    document.execCommand("copy");
    done();
  }
});
// A live block whose state key changed (someone or automation moved the rollout) reloads
// the page, so the action buttons outside it always match the state.
document.addEventListener("htmx:afterSwap", (event) => {
  const target = event.detail.target;
  const key = target && target.dataset && target.dataset.liveKey;
  const fresh = target && target.querySelector("[data-live-key]");
  if (key && fresh && fresh.dataset.liveKey !== key) window.location.reload();
});
