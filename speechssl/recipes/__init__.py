"""Glue for the egs/ recipes and the label-efficiency experiment: labelled subsets, result tables."""
