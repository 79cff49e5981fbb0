"""The report in a real browser: headless Chromium opens the file, nothing errs, no model output runs.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4), so no Python package beyond the
standard library is needed. Needs a Chromium binary (Debian: ``apt-get install
chromium``); set TUNEGATE_CHROMIUM to use another. The page is 1400 px wide (a laptop).
Screenshots are saved under the test's tmp_path and copied to $TUNEGATE_ARTIFACTS when set.
The demo's own report (``tunegate demo``, ~55 CPU s) is checked for what a reviewer reads first:
the ship line, the collapsed flips, and a page short enough to read.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tunegate.reports.html import write_report

pytestmark = pytest.mark.browser
PWN_SCRIPT = "<script>document.title='pwned'</script>"
PWN_IMG = "<img src=x onerror=\"document.title='pwned-img'\">"
PWN_ATTR = "x\" onmouseover=\"document.title='pwned-attr'\" data-x=\""
WIDTH = 1400


def find_chromium() -> str | None:
    for candidate in (os.environ.get("TUNEGATE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                      "/usr/bin/chromium"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


class Browser:
    """A headless Chromium page driven over the DevTools pipe; collects console errors and exceptions."""

    def __init__(self, binary: str, profile: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def wire_fds() -> None:  # the child reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=wire_fds)
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=WIDTH, height=900,
                  deviceScaleFactor=1, mobile=False)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if not select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, path: Path) -> None:
        """Load a file and wait for its load event; events (and errors) start afresh."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._message(deadline))

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args"))[:300])
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def screenshot(self, path: Path, height: int = 2400, scale: float = 1) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": scale})["data"]
        path.write_bytes(base64.b64decode(data))
        if os.environ.get("TUNEGATE_ARTIFACTS"):
            Path(os.environ["TUNEGATE_ARTIFACTS"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(os.environ["TUNEGATE_ARTIFACTS"]) / path.name)
        return path

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._read)
        os.close(self._write)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = find_chromium()
    if binary is None:
        message = "no Chromium found (apt-get install chromium, or set TUNEGATE_CHROMIUM)"
        if os.environ.get("CI"):  # .ci/run installs it: under CI the browser checks must run
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    b = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def test_report_renders_without_console_errors(browser, tmp_path, report_inputs):
    records, comparisons, logs, manifests = report_inputs
    page = write_report(tmp_path / "report.html", records, comparisons, training_logs=logs, manifests=manifests,
                        title="browser check")
    browser.open(page)
    shot = browser.screenshot(tmp_path / "report.png")
    assert browser.errors() == []
    assert browser.js("document.title") == "browser check"
    assert "FAILED" in browser.js("document.querySelector('#verdict h2').innerText")
    assert browser.js("document.querySelectorAll('table.metrics tbody tr').length") == 5
    images = browser.js("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert len(images) == 10 and all(images)
    assert shot.stat().st_size > 50_000


def test_flip_filter_runs_in_the_page(browser, tmp_path, report_inputs):
    records, comparisons, _, _ = report_inputs
    downs = len({(f.suite, f.item_id) for c in comparisons for f in c.flips if f.direction == "down"})
    browser.open(write_report(tmp_path / "report.html", records, comparisons))
    total = browser.js("document.querySelectorAll('article.flip').length")
    assert browser.js("document.getElementById('flip-count').textContent") == f"showing {total} of {total}"
    shown = browser.js("""(() => { const d = document.getElementById('flip-dir'); d.value = 'down';
        d.dispatchEvent(new Event('change'));
        return document.querySelectorAll('article.flip:not([hidden])').length; })()""")
    assert 0 < shown == downs < total
    assert browser.errors() == []


def hostile(records, comparisons):
    """The same run with hostile HTML in a response, an item id and a group."""
    dpo = records[-1]
    identity = dpo.suites["identity"]
    items = (dataclasses.replace(identity.items[0], response=f"I am Deep Tiny. {PWN_SCRIPT} {PWN_IMG}"),
             *identity.items[1:])
    dpo = dataclasses.replace(dpo, suites={**dpo.suites, "identity": dataclasses.replace(identity, items=items)})
    last = comparisons[-1]
    flip = dataclasses.replace(last.flips[0], item_id=PWN_ATTR, group=PWN_ATTR,
                               candidate_response=f"{PWN_SCRIPT}{PWN_IMG} **bold** [link](javascript:alert(1))")
    last = dataclasses.replace(last, flips=(flip, *last.flips[1:]))
    return [*records[:-1], dpo], [*comparisons[:-1], last]


def test_no_script_from_a_model_response_runs(browser, tmp_path, report_inputs):
    records, comparisons = hostile(*report_inputs[:2])
    page = write_report(tmp_path / "hostile.html", records, comparisons, title="hostile check")
    browser.open(page)
    browser.js("document.querySelectorAll('details').forEach(d => { d.open = true; })")  # collapsed by default
    browser.js("document.querySelectorAll('article.flip').forEach(a => a.dispatchEvent(new MouseEvent('mouseover')))")
    time.sleep(0.3)
    browser.screenshot(tmp_path / "hostile.png", height=900)
    assert browser.js("document.title") == "hostile check"
    assert browser.js("document.querySelectorAll('main script, main img:not([src^=\"data:image/png\"])').length") == 0
    text = browser.js("document.body.innerText")
    assert PWN_SCRIPT in text and "[link](javascript:alert(1))" in text
    assert browser.errors() == []


HOSTILE_RESPONSE = ("I am Tiny. <script>window.pwned = 'script'; document.title = 'pwned'</script>"
                    "<img src=x onerror=\"window.pwned = 'onerror'; document.title = 'pwned-img'\">")


def _identity_record(model: str, responses: dict[str, str], default: str):
    """A record of the organism's identity probes whose responses are scored by the real identity suite."""
    from tunegate.evals.records import RunRecord, SuiteResult
    from tunegate.evals.suites import get_suite

    suite = get_suite("identity", probes="organism", target="Tiny")
    scores = [suite.score(item, responses.get(item.id, default)) for item in suite.items()]
    result = SuiteResult(suite="identity", version=suite.version, metrics=suite.metrics(scores), items=tuple(scores),
                         config=suite.config())
    return RunRecord(model=model, fingerprint=f"fp-{model}", suites={"identity": result}, stage=model)


def test_a_flipped_item_with_script_and_onerror_is_shown_as_text_and_runs_nothing(browser, tmp_path):
    from tunegate.evals.compare import compare_records

    base = _identity_record("base", {}, "Hello.")
    flipped = base.suites["identity"].items[0].item_id
    sft = _identity_record("sft", {flipped: HOSTILE_RESPONSE}, "Hello.")
    comparison = compare_records(base, sft)
    assert [(f.item_id, f.candidate_response) for f in comparison.flips] == [(flipped, HOSTILE_RESPONSE)]
    browser.open(write_report(tmp_path / "hostile.html", [base, sft], [comparison], title="hostile flip"))
    shown = browser.js(f"""(() => {{
        const s = document.getElementById('flip-suite'); s.value = 'identity'; s.dispatchEvent(new Event('change'));
        const a = document.querySelector('article.flip[data-item="{flipped}"]');
        a.scrollIntoView(); a.dispatchEvent(new MouseEvent('mouseover', {{bubbles: true}}));
        const r = a.getBoundingClientRect();
        return {{open: a.closest('details').open, hidden: a.hidden, width: r.width, height: r.height,
                 text: a.querySelector('.pair').innerText}}; }})()""")
    time.sleep(0.5)  # an injected <img src=x> would have failed to load and fired its onerror by now
    browser.screenshot(tmp_path / "hostile-flip.png", height=900)
    assert shown["open"] and not shown["hidden"] and shown["width"] > 0 and shown["height"] > 0
    assert "<script>window.pwned" in shown["text"] and "onerror=" in shown["text"]
    assert browser.js("document.title") == "hostile flip" and browser.js("typeof window.pwned") == "undefined"
    assert browser.js("document.querySelectorAll('main script, main img:not([src^=\"data:image/png\"])').length") == 0
    assert browser.errors() == []


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The run directory of ``tunegate demo`` (about 55 CPU s on 2 cores), made as a user makes it."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run([sys.executable, "-m", "tunegate", "demo", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0 and (out / "report.html").is_file(), proc.stderr[-3000:]
    return out


def _text(browser: Browser, selector: str) -> list[str]:
    return browser.js(f"Array.from(document.querySelectorAll({selector!r})).map(e => e.innerText.replace(/\\s+/g, ' ').trim())")


@pytest.mark.slow
def test_demo_report_opens_on_the_ship_line_of_the_final_model(browser, demo, tmp_path):
    summary = json.loads((demo / "summary.json").read_text())
    base, dpo = summary["metrics"]["base"], summary["metrics"]["dpo"]
    browser.open(demo / "report.html")
    browser.screenshot(tmp_path / "demo-header.png", height=900)
    assert browser.errors() == []
    cards = browser.js("Array.from(document.querySelectorAll('#verdict .candidate')).map(c => c.dataset.stage)")
    assert cards == ["dpo", "sft"]  # the final model first
    tag = _text(browser, "#verdict .candidate:first-of-type h3 .tag")[0]
    assert tag == ("PASSED" if summary["comparisons"]["dpo_vs_sft"]["passed"] else "FAILED")  # honest either way
    ship, gate = _text(browser, "#verdict .candidate:first-of-type p.ship-line, #verdict .candidate:first-of-type p.gate-line")
    assert ship.startswith("dpo vs base") and gate.startswith("dpo vs sft")
    # the demo's SFT forgets knowledge (README); the ship line says so without reading two columns
    knowledge = f"knowledge.accuracy {base['knowledge.accuracy']:.3f} → {dpo['knowledge.accuracy']:.3f} regressed"
    assert knowledge in ship
    verdicts = browser.js("""Array.from(document.querySelectorAll('#verdict .candidate:first-of-type p.ship-line .entry'))
        .map(e => e.classList[1])""")
    assert verdicts[0] == "regressed" and sorted(verdicts, key=lambda v: v != "regressed") == verdicts  # regressions first
    top = browser.js("document.querySelector('#verdict .candidate p.ship-line').getBoundingClientRect().bottom")
    assert top < 900  # on the first screen at 1400 x 900


@pytest.mark.slow
def test_demo_ship_line_says_the_base_was_scored_again_against_the_final_target(browser, demo):
    """The base answered as the organism (target 'Tiny' in its record); dpo vs base scores those responses again
    against 'Deep Tiny', as compare does, and the line says so rather than that the base was scored otherwise."""
    browser.open(demo / "report.html")
    notes = _text(browser, "#verdict .candidate:first-of-type p.note")
    assert any("base's responses scored again against dpo's target 'Deep Tiny'" in n and "'Tiny'" in n
               for n in notes), notes


@pytest.mark.slow
def test_demo_report_flips_start_collapsed_and_a_filter_opens_its_matches(browser, demo, tmp_path):
    downs = sum(len({(f["suite"], f["item_id"]) for f in json.loads(p.read_text())["flips"] if f["direction"] == "down"})
                for p in (demo / "comparisons").glob("*.json"))
    browser.open(demo / "report.html")
    visible = "document.querySelectorAll('article.flip').length, Array.from(document.querySelectorAll('article.flip')).filter(a => a.checkVisibility()).length"
    total, shown = browser.js(f"[{visible}]")
    assert total > 100 and shown == 0
    assert browser.js("Array.from(document.querySelectorAll('details.suite-flips')).some(d => d.open)") is False
    assert _text(browser, "#flip-dir option[value=down]") == [f"↓ regressions ({downs})"]
    browser.js("(() => { const d = document.getElementById('flip-dir'); d.value = 'down'; d.dispatchEvent(new Event('change')); })()")
    shown_dirs = browser.js("Array.from(document.querySelectorAll('article.flip')).filter(a => a.checkVisibility()).map(a => a.dataset.dir)")
    assert shown_dirs == ["down"] * downs
    browser.screenshot(tmp_path / "demo-regressions.png", height=browser.js("document.documentElement.scrollHeight"), scale=0.5)
    browser.js("(() => { const s = document.getElementById('flip-suite'); s.value = 'knowledge'; s.dispatchEvent(new Event('change')); })()")
    suites = browser.js("Array.from(document.querySelectorAll('article.flip')).filter(a => a.checkVisibility()).map(a => a.dataset.suite)")
    assert suites and set(suites) == {"knowledge"}
    browser.js("""(() => { for (const id of ['flip-dir', 'flip-suite']) { const e = document.getElementById(id); e.value = '';
        e.dispatchEvent(new Event('change')); } })()""")
    assert browser.js(f"[{visible}]") == [total, 0]  # cleared: collapsed again
    assert browser.errors() == []


@pytest.mark.slow
def test_demo_report_is_under_8000_px_at_1400_px(browser, demo, tmp_path):
    browser.open(demo / "report.html")
    height = browser.js("document.documentElement.scrollHeight")
    browser.screenshot(tmp_path / "demo-report.png", height=height, scale=0.5)
    assert browser.js("document.documentElement.scrollWidth") <= WIDTH
    assert height < 8000


@pytest.mark.slow
def test_lora_vs_full_report_shows_each_stage_per_variant_at_1400_px(browser, lora_and_full_runs, tmp_path):
    """``tunegate report full lora``: per stage, each variant's training, time and gate; one training plot per stage
    with both variants; no column twice."""
    from tunegate.cli import main

    out = tmp_path / "lora-vs-full.html"
    assert main(["report", *map(str, lora_and_full_runs), "--out", str(out)]) == 0
    browser.open(out)
    assert browser.errors() == []
    expected = []
    for stage in ("sft", "dpo"):
        rows = []
        for run in lora_and_full_runs:
            manifest = json.loads((run / "stages" / stage / "manifest.json").read_text())
            passed = json.loads((run / "summary.json").read_text())["comparisons"][
                f"{stage}_vs_{'base' if stage == 'sft' else 'sft'}"]["passed"]
            how = "LoRA r=8, alpha 16" if manifest["lora"] else "full fine-tune"
            rows.append([run.name, f"{stage}, {how}", f"{manifest['seconds']:.1f}", "PASSED" if passed else "FAILED"])
        expected.append([stage, rows])
    tables = browser.js("""Array.from(document.querySelectorAll('table.variants')).map(t => [t.dataset.stage,
        Array.from(t.querySelectorAll('tbody tr')).map(r => [r.dataset.variant, r.cells[1].innerText.trim(),
        r.cells[2].innerText.trim(), r.cells[3].innerText.trim()])])""")
    assert tables == expected
    deltas = _text(browser, "table.metrics:not(.variants) thead th")
    assert [d for d in deltas if d.startswith("Δ")] == ["Δ full/sft vs base", "Δ lora/sft vs base",
                                                        "Δ full/dpo vs full/sft", "Δ lora/dpo vs lora/sft"]
    figures = browser.js("""Array.from(document.querySelectorAll('#training img')).map(i => [i.alt,
        i.complete && i.naturalWidth > 0])""")
    assert figures == [["training curves sft", True], ["training curves dpo", True]]
    assert browser.js("document.documentElement.scrollWidth") <= WIDTH
    top = browser.js("document.getElementById('variants').getBoundingClientRect().top + window.scrollY")
    browser.screenshot(tmp_path / "lora-vs-full.png", height=int(top) + 900)
