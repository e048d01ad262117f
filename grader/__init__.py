"""The grading harness: intake, sandbox, checks, scoring, results and reports."""

__version__ = "0.1.0"
