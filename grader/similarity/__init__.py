"""Comparing a graded class's submissions: code, audio, checkpoints (``grade similarity``; never a grade).

- :mod:`grader.similarity.prints`: one submission's fingerprints, made while it is graded;
- :mod:`grader.similarity.code`, :mod:`~grader.similarity.audio`, :mod:`~grader.similarity.weights` (with
  :mod:`~grader.similarity.weights_inside`, which runs in the sandbox): each kind's fingerprint and comparison;
- :mod:`grader.similarity.classwide`: the class compared, pairs cached, the CSV (pages: :mod:`grader.report.similarity`).
"""
