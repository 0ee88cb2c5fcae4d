"""Human annotation in the browser (annobc serve) and human-study comparisons (annobc compare)."""
