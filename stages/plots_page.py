"""DVC stage `plots_page`: the page `dvc plots show` fills in, with the chart libraries inlined (offline)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402


def _page(cfg, a):
    from gan.plots_page import write_template

    write_template(a.out)


if __name__ == "__main__":
    run_stage("plots_page", {"out": "reports/plots/template.html"}, _page)
