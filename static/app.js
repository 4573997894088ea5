// Progressive enhancement only: every page works without this file.
// Forms with data-confirm ask before they submit (deletes, removals).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
