"""Open report.html in headless Chromium: the tables and plots render, the console stays clean.
A screenshot is kept under test-artifacts/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mckd.student
from mckd.config import config_from_dict
from mckd.distill.pipeline import run_pipeline

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_fakes as pf

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BAR_BLUE = (0x4C, 0x72, 0xB0)  # the colour of the bars in the methods plot


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    proc = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600)
    path = shutil.which("chromium")
    if proc.returncode != 0 or path is None:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` failed")
    return path


def render(browser: str, page: Path, screenshot: Path) -> tuple[str, str]:
    """(DOM after load, browser log with the page's console messages)."""
    common = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--enable-logging=stderr", "--log-level=0", "--window-size=1280,3600"]
    shot = subprocess.run([*common, f"--screenshot={screenshot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert screenshot.exists(), shot.stderr[-2000:]
    return dom.stdout, shot.stderr + dom.stderr


def console_errors(log: str) -> list[str]:
    """The page's console messages (Chromium logs them as `INFO:CONSOLE` at log level 0)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def blue_pixels(png: Path) -> int:
    import matplotlib.image
    import numpy as np

    img = matplotlib.image.imread(png)[..., :3]
    target = np.array(BAR_BLUE) / 255.0
    return int((np.abs(img - target).max(axis=-1) < 0.03).sum())


def test_report_renders_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = chromium()
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)
    summary = run_pipeline(config_from_dict(pf.tiny_config(tmp_path, name="tiny <b>&</b> run")))
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)

    dom, log = render(browser, summary.report, screenshot)
    assert console_errors(log) == []
    assert dom.count("<table>") >= 4 and "mckd_3stage" in dom and "right_branching" in dom
    assert "tiny &lt;b&gt;&amp;&lt;/b&gt; run" in dom  # the name is text, not markup
    assert dom.count('src="data:image/png;base64,') == 3  # methods, stages, comparisons
    assert blue_pixels(screenshot) > 2000  # the bars of the methods plot are on screen

    # The same checks catch a broken page: undecodable plots show no bars, a script error is
    # a console message.
    broken = tmp_path / "broken.html"
    page = summary.report.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA")
    broken.write_text(page.replace("</body>", "<script>notDefined();</script></body>"))
    dom, log = render(browser, broken, tmp_path / "broken.png")
    assert console_errors(log) and blue_pixels(tmp_path / "broken.png") == 0
