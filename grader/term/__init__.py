"""The instructor's term around the grading: adjustments by hand, late work, rosters in and out of the LMS,
resubmissions. Kept in ``OUT/gradebook.sqlite`` (:mod:`grader.term.database`), applied whenever pages and exports
are rendered, never by re-grading."""
