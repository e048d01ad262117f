"""One module per kind of check; a rubric item names its module in ``check = "..."``.

Each declares the artefacts its check reads (``NEEDS``) and the parameters that only turn them into points
(``SCORING``); :mod:`grader.context` says how to add one.
"""
