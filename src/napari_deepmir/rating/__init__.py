"""Rating: guided labelling sessions (store, decisions, resume, export) and the consensus read of two raters."""
