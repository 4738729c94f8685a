"""The report: method comparison, figures, rendering and the report folder."""
