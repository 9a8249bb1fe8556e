"""The inventory report: what a geologist puts in a post-event note, as one offline HTML page.

    build      gathering a report (public entry: ``write_report``, ``check_report_target``)
    inventory  the polygons read back with their areas; the scene's grid, extent and date
    overview   a decimated true-colour picture of the raster, in bounded memory
    powerlaw   the area-frequency distribution and its power-law tail (MLE exponent, KS cutoff)
    figures    the pictures, drawn by matplotlib's Agg canvas (never a GUI backend)
    scores     the model's held-out scores as the contract records them
    page       the HTML page; units: numbers as the page writes them

Imports :mod:`..polygons` (reading polygon files, ground measures) and :mod:`..raster` (pixel
sizes) besides the shared modules; :mod:`..mapping` calls it after the polygons are written.
"""

from .build import (
    REPORT_SUFFIXES,
    ReportRun,
    StagedReport,
    build_report,
    check_report_target,
    publish_report,
    write_report,
)

__all__ = ["REPORT_SUFFIXES", "ReportRun", "StagedReport", "build_report", "check_report_target",
           "publish_report", "write_report"]
