"""HTML report assembly: every run's ``RUN/index.html`` is written through :func:`write_run_index`."""

from __future__ import annotations

from particlegraph.report.html import ReportSection as ReportSection
from particlegraph.report.html import write_run_index as write_run_index
