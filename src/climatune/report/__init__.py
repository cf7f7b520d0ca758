"""Report: the HTML report of a folder of runs."""

from climatune.utils.lazy import lazy_exports

_OWNERS = {
    "best_of": "tables",
    "Cell": "markup",
    "curve_gaps": "tables",
    "data_uri": "figures",
    "digits_to_separate": "tables",
    "efficiency_curve": "figures",
    "esc": "markup",
    "facts": "markup",
    "figure": "markup",
    "figure_file": "markup",
    "fmt": "tables",
    "Found": "collect",
    "gallery": "markup",
    "loss_curves": "figures",
    "main_model": "tables",
    "METRIC_ORDER": "tables",
    "metric_table": "tables",
    "MetricTable": "tables",
    "NETWORKS": "tables",
    "png_bytes": "figures",
    "PNG_SIGNATURE": "collect",
    "png_size": "markup",
    "read_csv": "collect",
    "read_json": "collect",
    "read_losses": "collect",
    "read_yaml": "collect",
    "render_report": "html",
    "REPORT_NAME": "html",
    "rmse_bars": "figures",
    "RunInfo": "collect",
    "scan": "collect",
    "SECTIONS": "sections",
    "table": "markup",
    "verdict": "tables",
    "write_report": "html",
}
__all__ = sorted(_OWNERS)
__getattr__ = lazy_exports(__name__, _OWNERS)
