"""Helpers of the models: argument checks and SCNet's checkpoint guard."""
