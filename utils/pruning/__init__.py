"""Structured channel pruning of YOLOv5 models (torch-pruning 1.x) and the BatchNorm sparsity penalty."""
