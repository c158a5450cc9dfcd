"""Browser test harness: Debian's Chromium driven by Playwright, and axe-core for accessibility.

- `launch(playwright)` starts the system Chromium (`/usr/bin/chromium`, or EBACKPACK_CHROMIUM): the
  tests never download Playwright's own browser builds.
- `axe_path()` installs axe-core once with `npm ci` (pinned by package-lock.json beside this file) into
  `<repo>/.cache/browser/axe` (root overridable with EBACKPACK_BROWSER_CACHE) and returns the path of
  `axe.min.js`; the install is reused while package.json / package-lock.json are unchanged.
- `axe_violations(page)` runs axe on the page for the WCAG 2.0/2.1 A and AA rules and returns the
  violations; `describe_violations()` prints them readably for an assertion message.

The app's Content-Security-Policy is `script-src 'self'`, and `page.add_script_tag()` injects the file's
text as an inline script, which that policy blocks. Pages that are checked with axe are therefore
opened in a context made by `axe_context()`, which sets Playwright's `bypass_csp=True`: ONLY for the
axe run. Every other browser test uses ordinary contexts with the policy enforced (and the security
tests check that every HTML response carries it).
A broken harness raises RuntimeError: tests never skip silently.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright
from playwright.sync_api import Error as PlaywrightError

from tests.npm_cache import npm_install

HARNESS_DIR = Path(__file__).resolve().parent
HARNESS_FILES = ("package.json", "package-lock.json")
REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

_ready: Path | None = None


def _cache_root() -> Path:
    override = os.environ.get("EBACKPACK_BROWSER_CACHE")
    return Path(override) if override else REPO_ROOT / ".cache" / "browser"


def axe_path() -> Path:
    """`axe.min.js` of the pinned axe-core, installed with `npm ci` if needed."""
    global _ready
    if _ready is not None:
        return _ready
    target = npm_install(HARNESS_DIR, HARNESS_FILES, _cache_root(), "axe", "axe-core for the browser tests")
    script = target / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        raise RuntimeError(f"axe-core installed, but {script} is missing")
    _ready = script
    return script


def launch(playwright: Playwright, **options: Any) -> Browser:
    """Debian's Chromium, headless (no sandbox: the tests may run as root in a container)."""
    executable = os.environ.get("EBACKPACK_CHROMIUM", CHROMIUM)
    if not Path(executable).is_file():
        raise RuntimeError(
            f"no Chromium at {executable} (Debian package `chromium`, or set EBACKPACK_CHROMIUM)"
        )
    return playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], **options)


def axe_context(browser: Browser, **options: Any) -> BrowserContext:
    """A context for pages checked with axe: the app's CSP (`script-src 'self'`) would block the
    injected axe script, so Playwright bypasses CSP here, and only here."""
    return browser.new_context(bypass_csp=True, **options)


def axe_violations(page: Page, tags: Sequence[str] = WCAG_21_AA) -> list[dict[str, Any]]:
    """axe-core's violations of the rules with these tags on the page as it is now (needs a page of a
    context from `axe_context()`: see the module docstring)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        try:
            page.add_script_tag(path=str(axe_path()))
        except PlaywrightError as exc:
            if "Content Security Policy" not in str(exc):
                raise
            raise RuntimeError(
                "the page's Content-Security-Policy blocked axe: open it in a context from axe_context()"
            ) from exc
    result: dict[str, Any] = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                                    resultTypes: ["violations"]});
            return {violations: result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl, tags: v.tags,
                nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary})),
            }))};
        }""",
        list(tags),
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def describe_violations(violations: list[dict[str, Any]], where: str = "") -> str:
    """One block per rule: id, impact, help, then each offending element with axe's explanation."""
    lines = [
        f"{where}: {len(violations)} axe violation(s)" if where else f"{len(violations)} axe violation(s)"
    ]
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            lines.append(f"      at {' '.join(map(str, node['target']))}")
            lines.append(f"         {node['html'][:200]}")
            for detail in (node.get("summary") or "").splitlines():
                lines.append(f"         {detail}")
    return "\n".join(lines)
