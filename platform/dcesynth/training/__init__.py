"""The Ray Train loop, checkpoints and schedules. Built in a later issue."""
