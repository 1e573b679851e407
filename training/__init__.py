"""Training of any PRFDN stage's checkpoint: the loop (``training.loop``) and its data (``training.data``)."""
