"""Metrics, feature-extractor weights, SAMe, synthesis, kinetics and reports. Later issue."""
