"""Presentation: LaTeX and Markdown, the HTML report, plots, the terminal table, the CLI, the
Jupyter displays. Reads results; never judges."""
