"""Sweep reports on a folder of real `train` runs, and report.html rendered by a real headless Chromium."""
import csv
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.plots import line_chart, style, svg
from pipeline.report import write_sweep_report
from tests.conftest import ROOT, run_cli, run_command
from tests.test_report import SVG, Page, decode, polyline_points, small_data, small_run, train_small  # noqa: F401

RATES = ("0.001", "0.005", "0.02")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def sweep(small_data, tmp_path_factory):  # noqa: F811
    """A sweep folder as the sweep command lays it out: one ordinary run folder per learning rate."""
    folder = tmp_path_factory.mktemp("sweep")
    for rate in RATES:
        train_small(small_data, folder / f"lr-{rate}", f"train.learning_rate={rate}")
    return folder


def test_sweep_report_without_summary_builds_the_table_from_the_runs(sweep):
    path = write_sweep_report(sweep)  # the call the sweep command makes at its end
    text = path.read_text()
    page = Page(text)
    assert page.sections == ["summary", "cost"] and not page.tags & {"script", "link"}
    rows = page.rows
    assert rows[0] == ["run", "learning rate", "train accuracy", "test accuracy", "test log loss", "final cost"]
    assert [r[:2] for r in rows[1:]] == [[f"lr-{rate}", str(float(rate))] for rate in RATES]
    assert page.links == [f"lr-{rate}/report.html" for rate in RATES]  # each run's name opens its report
    for row, rate in zip(rows[1:], RATES):
        with open(sweep / f"lr-{rate}" / "costs.csv") as f:
            last = float(list(csv.DictReader(f))[-1]["cost"])
        with open(sweep / f"lr-{rate}" / "metrics.json") as f:
            accuracy = json.load(f)["test"]["accuracy"]
        assert row[3] == f"{100 * accuracy:.2f} %" and str(accuracy) in page.titles  # every digit in the tooltip
        assert re.fullmatch(r"0\.\d{5}", row[5]) and float(row[5]) == pytest.approx(last, rel=1e-4)
        assert repr(last) in page.titles
    [svg_src] = [a["src"] for a in page.images]
    svg_text = decode(svg_src)[1].decode()
    assert svg_text == (sweep / "cost_curves.svg").read_text()
    assert [len(p) for p in polyline_points(svg_text)] == [30, 30, 30]
    legend = [t.text for t in ET.fromstring(svg_text).iter(f"{SVG}text")]
    assert all(f"learning_rate={float(rate)}" in legend for rate in RATES)
    # the larger the step, the lower the final cost: the lesson's learning-rate figure
    finals = [p[-1, 1] for p in polyline_points(svg_text)]  # pixels: larger y is a lower cost
    assert finals[0] < finals[1] < finals[2]
    with Image.open(sweep / "cost_curves.png") as image:
        assert image.size == (1100, 440)  # the page's width


def test_sweep_report_shows_summary_csv_when_the_sweep_wrote_one(sweep, tmp_path):
    folder = shutil.copytree(sweep, tmp_path / "sweep")
    (folder / "summary.csv").write_text(
        "run,train.learning_rate,status,validation_accuracy,test_log_loss,duration_s,best\n"
        "lr-0.001,0.001,done,0.5,0.6931471805599453,1.25,\n"
        "lr-0.02,0.02,done,0.7512345,0.1,0.5,validation_accuracy\n"
        "lr-0.5,0.5,failed,,,,\n")
    run_cli("report", folder, check=0)  # the CLI recognises a sweep folder too
    page = Page((folder / "report.html").read_text())
    assert page.rows == [["run", "learning rate", "status", "validation accuracy", "test log loss", "duration"],
                         ["lr-0.001", "0.001", "done", "50.00 %", "0.69315", "1.2 s"],
                         ["lr-0.02", "0.02", "done", "75.12 %", "0.10000", "0.5 s"],
                         ["lr-0.5", "0.5", "failed", "", "", ""]]
    assert page.row_classes == [None, None, "best", None]  # the row the sweep ranked best, by its metric
    assert "Highlighted: lr-0.02, the best run by validation_accuracy." in page.text
    assert {"0.6931471805599453", "0.7512345", "train.learning_rate"} <= set(page.titles)
    assert page.links == ["lr-0.001/report.html", "lr-0.02/report.html"]  # lr-0.5 has no run folder


def test_sweep_report_log_scale(sweep, tmp_path):
    folder = shutil.copytree(sweep, tmp_path / "sweep")
    (folder / "sweep.yaml").write_text("sweep: {train.learning_rate: [0.001, 0.005, 0.02]}\n")  # what marks a sweep
    run_cli("report", folder, "--set", "report.cost_scale=log", check=0)
    assert "cost (log scale)" in (folder / "cost_curves.svg").read_text()


def test_sweep_report_refusals_name_the_folder_or_file(sweep, tmp_path):
    with pytest.raises(PipelineError, match=rf"^{tmp_path}: no run folders \(with config.yaml and costs.csv\) in it$"):
        write_sweep_report(tmp_path)
    with pytest.raises(PipelineError, match=rf"^{sweep}: cost_scale must be linear or log, got 'cubic'$"):
        write_sweep_report(sweep, "cubic")
    folder = shutil.copytree(sweep, tmp_path / "sweep")
    (folder / "report.html").unlink(missing_ok=True)
    (folder / "summary.csv").write_text("")
    with pytest.raises(PipelineError, match="summary.csv: empty; expected a header row$"):
        write_sweep_report(folder)
    assert not (folder / "report.html").exists()


def test_a_folder_of_runs_that_is_not_a_sweep_is_refused_naming_a_run(sweep, tmp_path):
    folder = shutil.copytree(sweep, tmp_path / "runs")  # as runs/ is: runs, but no sweep.yaml nor summary.csv
    (folder / "report.html").unlink(missing_ok=True)
    result = run_cli("report", folder)
    assert result.returncode == 1 and result.stderr == (
        f"error: {folder}: a folder of runs, not a sweep (no sweep.yaml); report one run, e.g. {folder / 'lr-0.02'}, "
        "or compare several with `compare`\n")
    assert not (folder / "report.html").exists()


def chromium():
    """The Chromium binary, or a skip (a failure when REQUIRE_REAL_DATA is set: CI must run this test)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("REQUIRE_REAL_DATA"):
        pytest.fail("chromium is not installed (apt-get install chromium); CI must render the report")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def screenshot(html, tmp_path):
    png = tmp_path / "shot.png"
    result = run_command([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--window-size=1200,3000", f"--screenshot={png}", html.as_uri()], timeout=180)
    assert result.returncode == 0, result.stderr
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"))


def test_chromium_renders_the_run_report(small_run, tmp_path):  # noqa: F811
    pixels = screenshot(small_run / "report.html", tmp_path)
    assert pixels.shape == (3000, 1200, 3)
    ink = np.any(pixels < 200, axis=2)  # (h, w): not white or near-white
    assert ink.mean() > 0.01  # text, charts and images, not a blank page
    rgb = pixels.astype(np.int64)
    colours = len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]))
    assert colours > 1000  # the inlined photos decoded and were drawn (a broken image is a small grey icon)


def test_chromium_renders_the_sweep_report(sweep, tmp_path):
    write_sweep_report(sweep)
    pixels = screenshot(sweep / "report.html", tmp_path)
    assert np.any(pixels < 200, axis=2).mean() > 0.002
    # the chart's series colours are on screen: orange-red and blue (the first series is black)
    assert np.any(np.all(np.abs(pixels.astype(int) - (0xd5, 0x5e, 0x00)) < 30, axis=2))
    assert np.any(np.all(np.abs(pixels.astype(int) - (0x00, 0x72, 0xb2)) < 30, axis=2))


def test_runs_tied_best_on_validation_are_all_marked_and_the_tie_is_said(small_data, tmp_path):  # noqa: F811
    """report.cost_scale changes no number: its two runs at each rate tie exactly, and the better pair is best."""
    (tmp_path / "tie.yaml").write_text(
        f"base: {ROOT / 'configs' / 'default.yaml'}\n"
        f"data: {{dir: {small_data}, val_fraction: 0.25}}\ntrain: {{num_iterations: 100, print_every: 10}}\n"
        "sweep: {train.learning_rate: [0.0001, 0.01], report.cost_scale: [linear, log]}\n")
    result = run_cli("sweep", "--config", tmp_path / "tie.yaml", "--sweep-dir", tmp_path / "sw", "--quiet", check=0)
    with open(tmp_path / "sw" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    best = [r["run"] for r in rows if r["best"]]
    assert len(best) == 2 and rows[0]["validation_log_loss"] == rows[1]["validation_log_loss"]
    assert result.stdout.splitlines()[-1].startswith(f"best on validation: a tie of 2 runs, {', '.join(best)} "
                                                     "(validation_log_loss ")
    page = Page((tmp_path / "sw" / "report.html").read_text())
    assert page.row_classes.count("best") == 2
    assert f"Highlighted: a tie of 2 runs, {', '.join(best)}, equal best by validation_log_loss." in page.text


def test_no_two_lines_of_a_sweep_chart_look_alike():
    series = [(f"run {k}", [0, 1], [k, k + 1]) for k in range(12)]
    chart = ET.fromstring(svg(line_chart(series, "t", "x", "y", size=(800, 600))))
    looks = [(p.get("stroke"), p.get("stroke-dasharray")) for p in chart.iter(f"{SVG}polyline")]
    assert len(looks) == 12 and len(set(looks)) == 12
    assert len({style(k) for k in range(49)}) == 49


def test_a_swept_switch_reads_yes_or_no(sweep, tmp_path):
    folder = shutil.copytree(sweep, tmp_path / "sweep")
    (folder / "summary.csv").write_text("run,train.early_stopping,status,best\n"
                                        "lr-0.001,True,done,\nlr-0.02,False,done,\n")
    write_sweep_report(folder)
    page = Page((folder / "report.html").read_text())
    assert [row[1] for row in page.rows[1:]] == ["Yes", "No"] and "True" not in " ".join(page.text)
