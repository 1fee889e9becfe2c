"""Search-space files → Ray Tune runs. Built in a later issue."""
