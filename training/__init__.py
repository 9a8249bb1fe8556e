"""Training binary landslide segmentation models and exporting them with a model contract.

Runs on PyTorch and segmentation-models-pytorch; nothing in :mod:`landslide_mapper` imports this
package. Entry point: the ``landslide-train`` command (:mod:`training.cli`).
"""
