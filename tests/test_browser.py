"""Headless Chromium opens ``report.html`` from disk: every figure renders, tables present.

Needs Debian's ``chromium`` (``apt-get install chromium``); skipped without it unless
``CI`` is set, where it must run. The screenshot is kept in ``tests/artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _report_fits import small_fits

from bayescale.report import build as report

ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]

CHECK = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.querySelectorAll("img"));
  var out = {
    images: imgs.map(function (i) {
      return {id: i.id, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight};
    }),
    tables: Array.from(document.querySelectorAll("table")).map(function (t) {
      return {id: t.id, rows: t.rows.length};
    }),
    banner: (document.getElementById("diagnostics-banner") || {}).className || null
  };
  var pre = document.createElement("pre");
  pre.id = "bayescale-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must install it (apt-get install chromium)")
    pytest.skip("chromium not installed (apt-get install chromium)")


def _run(browser, args, tmp_path):
    profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    fits = small_fits()
    out = tmp_path_factory.mktemp("browser") / "report"
    report.build_report(fits["bayes"].runs, out_dir=out, fits=fits, quiet=True)
    return out


def test_figures_render_and_tables_present(report_dir, tmp_path):
    browser = _chromium()
    html = (report_dir / "report.html").read_text()
    probe = tmp_path / "probe.html"  # the report plus a script that reports what it sees
    probe.write_text(html.replace("</body>", CHECK + "</body>"))
    res = _run(browser, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
               tmp_path)
    m = re.search(r'<pre id="bayescale-check">(.*?)</pre>', res.stdout, re.S)
    assert m, f"no result from the page; chromium said: {res.stderr[-2000:]}"
    seen = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    ids = {i["id"] for i in seen["images"]}
    assert ids == {f"fig-{n}" for n in report.FIGURES}
    for img in seen["images"]:
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, img
    tables = {t["id"]: t["rows"] for t in seen["tables"]}
    for name in ("diagnostics", "priors", "methods", "frontier", "decisions"):
        assert tables.get(f"table-{name}", 0) > 1, tables
    assert seen["banner"] == "banner warning"


def test_screenshot(report_dir, tmp_path):
    browser = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_screenshot.png"
    shot.unlink(missing_ok=True)
    res = _run(browser, ["--window-size=1200,2400", f"--screenshot={shot}",
                         (report_dir / "report.html").as_uri()], tmp_path)
    assert shot.is_file(), res.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[0] >= 2000 and pixels.std() > 0.05  # not a blank page
    print(f"screenshot of the rendered report: {shot}")
