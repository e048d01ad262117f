"""One module per kind of check; a rubric item names its module in ``check = "..."``."""
