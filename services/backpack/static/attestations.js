// Watches uploads that are still being checked and announces their result (aria-live), without reloading.
(function () {
  var table = document.querySelector("table.attestations");
  var labels = table ? JSON.parse(table.getAttribute("data-labels")) : {};
  var live = document.getElementById("attestation-updates");

  function label(body) {
    if (body.state === "rejected") return labels.rejected || "not imported";
    var status = body.record && body.record.verification.status;
    return labels[status] || status;
  }

  function watch(row) {
    var id = row.getAttribute("data-id");
    var timer = setInterval(function () {
      fetch("/api/attestations/" + encodeURIComponent(id), {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (body) {
          if (!body || body.state === "received") return;
          clearInterval(timer);
          row.setAttribute("data-state", body.state);
          if (row.tagName === "ARTICLE") { window.location.reload(); return; }
          var cell = row.querySelector(".attestation-status");
          var title = row.querySelector("th a");
          cell.textContent = label(body);
          if (body.record && body.record.title && title) title.textContent = body.record.title;
          if (live) live.textContent = (title ? title.textContent + ": " : "") + label(body);
        });
    }, 1500);
  }

  document.querySelectorAll("[data-state='received']").forEach(watch);

  document.querySelectorAll("form.confirm").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
