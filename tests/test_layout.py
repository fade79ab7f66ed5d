"""The reports as a reader sees them: laid out by a real headless Chromium at 1280 px, measured in its DOM."""
import json
import re
import shutil

import pytest

from pipeline.plots import line_chart, svg
from tests.conftest import ROOT, run_cli, run_command
from tests.imagefolders import make_hard_folder
from tests.test_lbfgs import default_run, separable  # noqa: F401
from tests.test_report import small_data, small_run, train_small  # noqa: F401
from tests.test_sweep_report import CHROMIUM_FLAGS, chromium

# appended to a copy of the page by the test only (the reports hold no script): once everything has loaded,
# write what the browser laid out into the DOM, which --dump-dom prints
MEASURE = """<script>
addEventListener("load", () => {
  const right = (e) => Math.ceil(e.getBoundingClientRect().right), left = (e) => e.getBoundingClientRect().left;
  const legends = [...document.querySelectorAll("svg")].map((s) => {
    const box = s.querySelector("rect[stroke]");  // the legend's box: the only rect with an outline
    if (!box) return null;
    const b = box.getBoundingClientRect();
    return [...s.querySelectorAll("text[textLength]")].map((t) => {
      const r = t.getBoundingClientRect();
      return [t.textContent, r.left >= b.left && r.right <= b.right + 0.5 && r.top >= b.top && r.bottom <= b.bottom];
    });
  }).filter((x) => x);
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    viewport: innerWidth, page: document.documentElement.scrollWidth, body: right(document.body),
    height: document.documentElement.scrollHeight,
    names: [...document.querySelectorAll("table.summary td:first-child > a")].map((a) => a.getClientRects().length),
    images: [...document.images].map((i) => [i.alt, i.complete && i.naturalWidth > 0, right(i)]),
    tables: [...document.querySelectorAll("table")].map(right), legends,
  });
  document.body.append(out);
});
</script>"""


def measure(html_text, tmp_path, name="page.html", folder=None):
    """What Chromium laid out for html_text, written to folder (default tmp_path: relative links need theirs)."""
    page = (folder or tmp_path) / name
    page.write_text(html_text.replace("</body>", MEASURE + "</body>"))
    result = run_command([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--window-size=1280,1000", "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
                         timeout=180, text=True)
    assert result.returncode == 0, result.stderr
    dom = result.stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def assert_fits(m):
    assert m["viewport"] == 1280 and m["page"] <= 1280  # no horizontal scrolling
    assert m["images"] and all(loaded for _, loaded, _ in m["images"]), m["images"]
    assert all(right <= m["body"] for _, _, right in m["images"]) and all(t <= m["body"] for t in m["tables"])
    assert all(inside for legend in m["legends"] for _, inside in legend), m["legends"]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """The folder example on 1,800 64x64 photos whose classes differ faintly: some 150 mistakes on 360 test images."""
    work = tmp_path_factory.mktemp("photos")
    make_hard_folder(work / "photos", per_class=900, size=64)
    (work / "big.yaml").write_text(f"base: {ROOT / 'configs' / 'folder_example.yaml'}\n"
                                   f"data: {{root: {work / 'photos'}, name: big}}\n"
                                   "train: {num_iterations: 300, print_every: 20}\n")
    run_cli("train", "--config", work / "big.yaml", "--run-dir", work / "run", "--quiet", cwd=work, check=0)
    return work / "run"


def test_a_folder_run_with_many_mistakes_stays_short_and_its_mistakes_page_loads(folder_run, tmp_path):
    with open(folder_run / "misclassified" / "index.csv") as f:
        mistakes = sum(1 for _ in f) - 1
    assert mistakes > 100  # what the page must stay short with
    m = measure((folder_run / "report.html").read_text(), tmp_path)
    assert_fits(m)
    assert m["height"] < 9000, m["height"]
    every = measure((folder_run / "misclassified" / "index.html").read_text(), tmp_path, "measured.html",
                    folder_run / "misclassified")  # beside the PNGs it shows
    assert len(every["images"]) == mistakes and all(loaded for _, loaded, _ in every["images"])
    assert every["page"] <= 1280


def test_the_run_report_fits_1280_px_and_every_image_loads(small_run, tmp_path):  # noqa: F811
    m = measure((small_run / "report.html").read_text(), tmp_path)
    assert_fits(m)
    cost = [right for alt, _, right in m["images"] if alt == "cost by iteration"]
    assert cost == [m["body"] - 16]  # the cost chart spans the column (body less its 1em padding)


def test_the_l2_path_section_fits_and_its_chart_loads(default_run, tmp_path):  # noqa: F811
    """The report of the folder defaults (l2 auto): the path's chart and table inside the column."""
    m = measure((default_run[0] / "report.html").read_text(), tmp_path)
    assert_fits(m)
    assert [loaded for alt, loaded, _ in m["images"] if alt == "validation cost by l2"] == [True]


@pytest.fixture(scope="module")
def real_sweep(small_data, tmp_path_factory):  # noqa: F811
    """A sweep written by the sweep command, two keys swept: six runs with long legend labels."""
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "grid.yaml").write_text(
        f"base: {ROOT / 'configs' / 'default.yaml'}\ndata: {{dir: {small_data}}}\n"
        "train: {num_iterations: 200, print_every: 10}\n"
        "sweep: {train.learning_rate: [0.001, 0.005, 0.02], features.scaling: [divide255, standardize]}\n")
    run_cli("sweep", "--config", folder / "grid.yaml", "--sweep-dir", folder / "sweep", "--quiet", check=0)
    return folder / "sweep"


def test_the_sweep_report_fits_and_its_legend_stays_in_its_box(real_sweep, tmp_path):
    m = measure((real_sweep / "report.html").read_text(), tmp_path)
    assert_fits(m)
    # wider still: the validation columns and the best row a sweep with a validation split adds to summary.csv
    lines = (real_sweep / "summary.csv").read_text().splitlines()
    assert lines[0].endswith(",best")  # the sweep writes the column, empty without a validation split
    wide = [lines[0][:-len(",best")] + ",validation_accuracy,validation_log_loss,best"]
    wide += [line[:-1] + f",0.{k}123456789,0.{k}987654321,{'validation_accuracy' if k == 1 else ''}"
             for k, line in enumerate(lines[1:])]
    sweep = shutil.copytree(real_sweep, tmp_path / "wide")
    for k, line in enumerate(wide[1:], 1):  # names as a swept l2 makes them: "1e-05" may break after its "-"
        name = line.split(",")[0]
        (sweep / name).rename(sweep / f"{name}_l2=1e-05")
        wide[k] = f"{name}_l2=1e-05" + line[len(name):]
    (sweep / "summary.csv").write_text("\n".join(wide) + "\n")
    run_cli("report", sweep, check=0)
    html = (sweep / "report.html").read_text()
    assert '<tr class="best">' in html and len(re.findall("<th>", html)) >= 12
    wide = measure(html, tmp_path, "wide.html")
    assert_fits(wide)
    assert len(wide["names"]) == 6 and set(wide["names"]) == {1}  # each run's name on one line
    chart = (real_sweep / "cost_curves.svg").read_text()  # the same SVG, inline, so that its text can be measured
    legends = measure(f"<!DOCTYPE html><html><body>{chart}</body></html>", tmp_path, "chart.html")["legends"]
    assert [name for name, _ in legends[0]] == [f"scaling={s}, learning_rate={r}" for r in (0.001, 0.005, 0.02)
                                                 for s in ("divide255", "standardize")]
    assert all(inside for _, inside in legends[0])


def test_a_legend_name_longer_than_the_chart_is_cut_and_stays_in_its_box(tmp_path):
    long = "learning_rate=0.001, " * 12
    chart = svg(line_chart([(long, [0, 1], [1, 0]), ("short", [0, 1], [0, 1])], "t", "x", "y", size=(400, 300)))
    [legend] = measure(f"<!DOCTYPE html><html><body>{chart}</body></html>", tmp_path)["legends"]
    assert legend[0][0].endswith("\u2026") and long.startswith(legend[0][0][:-1]) and legend[1][0] == "short"
    assert all(inside for _, inside in legend)
