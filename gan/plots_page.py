"""The HTML page that `dvc plots show` fills in: Vega, Vega-Lite and Vega-Embed inlined, so the
interactive charts draw offline.

DVC's own page loads those three libraries from a CDN (jsDelivr); offline its charts stay blank.
`.dvc/config` points `plots.html_template` at the page this module writes (the `plots_page`
stage), which carries the libraries as one inlined script taken from the installed
`vl-convert-python` package (`vl_convert.javascript_bundle`): nothing is copied into this
repository, and nothing is fetched when the page opens. The page has no `{scripts}`
placeholder, so DVC's CDN tags are dropped; `{plot_divs}` is where DVC puts the charts.
"""

from __future__ import annotations

from pathlib import Path

VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite 5 specifications

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC plots</title>
    <!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {vega_embed}: from vl-convert-python {package}, inlined -->
    <script type="text/javascript">
BUNDLE
    </script>
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page() -> str:
    """The template: DVC replaces {plot_divs} (and {refresh_tag}); the bundle defines window.vegaEmbed."""
    import importlib.metadata

    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    if "</script" in bundle.lower() or "{plot_divs}" in bundle:  # either would cut the page short
        raise RuntimeError("the Vega bundle of vl-convert-python contains a '</script' or '{plot_divs}' text")
    versions = {"{vega}": vl_convert.get_vega_version(), "{vega_lite}": VEGA_LITE,
                "{vega_embed}": vl_convert.get_vega_embed_version(),
                "{package}": importlib.metadata.version("vl-convert-python")}
    text = PAGE
    for key, value in versions.items():
        text = text.replace(key, value)
    return text.replace("BUNDLE", bundle)


def write_template(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(), encoding="utf-8")
    print(f"plots_page: {path.stat().st_size / 1e6:.1f} MB, Vega-Lite {VEGA_LITE} inlined -> {path}")
