"""The training engine shared by ``train.py`` and ``train_kd.py``."""
