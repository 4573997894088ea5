// Progressive enhancement only: every page works without this file.
// Forms with data-confirm ask before they submit (deletes, removals).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Buttons with data-copy="ID" copy the value of the element with that id.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  const text = field.value !== undefined ? field.value : field.textContent;
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => { field.select && field.select(); });
  } else if (field.select) {
    field.select();
    document.execCommand("copy");
    done();
  }
});
