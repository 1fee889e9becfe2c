"""nnU-Net datasets, scenarios and fold fan-out. Built in a later issue."""
