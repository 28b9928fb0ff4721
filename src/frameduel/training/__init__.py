"""Training loops run inside jobs, shared by the tracks that train (accuracy, export's digits model)."""
