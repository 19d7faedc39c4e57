"""The DEEPMIR network, model files (safetensors + JSON card) and the registry of models.

Importing this package does not import torch; the modules that need it import it themselves.
"""
