"""Data: the phantom cohort, image geometry, readers and (later) the prepared dataset."""
