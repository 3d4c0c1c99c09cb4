"""The per-run report folder: report.html (html.py: tables, charts, explanations, the review queue; one
self-contained file), report.md (markdown.py: a digest of the top flagged routes) and the flagged list as
CSV, XLSX-safe text and Parquet. Built from the published warehouse (warehouse/report_queries.py)."""
