"""`slimkit export`: the trained recommender as an ONNX model, checked against PyTorch.

onnx.py wraps a trained Recommender so every input is a tensor (the user's raw rationale
vector instead of a user index, where the fusion head reads one), exports it with
``torch.onnx.export``, and compares onnxruntime's scores with PyTorch's for every user
of the dataset. torch, onnx and onnxruntime are imported inside the functions.
"""

from slimkit.export.onnx import export_onnx

__all__ = ["export_onnx"]
