// The "Print" button only works with JavaScript: it stays hidden without it (the PDF is the alternative).
document.querySelectorAll(".print-button").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
});
