// flowcourse: the "Contents" button in the article's header opens the page's table of
// contents. pydata-sphinx-theme 0.17 listens on the first button of class secondary-toggle
// only, which sphinx-book-theme 1.3 hides; the visible one in the article header is
// forwarded to it.
document.addEventListener("DOMContentLoaded", () => {
  const toggles = document.querySelectorAll(".secondary-toggle");
  toggles.forEach((button, index) => {
    if (index === 0) return;
    button.addEventListener("click", (event) => {
      event.preventDefault();
      toggles[0].click();
    });
  });
});
