"""The mixture search job: Ray loop, job state, resume."""
