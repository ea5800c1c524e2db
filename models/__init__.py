"""YOLOv5 v6.0 models: building blocks, the model, and loading of any checkpoint we can read."""

from models.loading import load_model

__all__ = ["load_model"]
