"""Training binary landslide segmentation models and exporting them with a model contract.

Runs on PyTorch and segmentation-models-pytorch. Entry point: the ``landslide-train`` command
(:mod:`training.cli`: ``fit``, ``evaluate``, ``export``).

What lives where:

- :mod:`training.config`: YAML configs (with ``_base`` inheritance) and the data sources they name.
- :mod:`training.data`: readers for image/mask pairs, label rules, splits, augmentation, dataset.
- :mod:`training.checkpoints`: checkpoints of plain values, read without running code.
- :mod:`training.models`: networks from an architecture name, a config or a checkpoint.
- :mod:`training.pretrained`: pretrained encoder weights (ImageNet), the first convolution
  fitted to the bands, a frozen encoder, ImageNet input statistics.
- :mod:`training.losses`, :mod:`training.metrics`: losses; segmentation scores (defined in
  :mod:`landslide_mapper.core.loop.metrics`).
- :mod:`training.ddp`: multi-process training (torchrun).
- :mod:`training.trainer`: setting up a run (loader, network, optimiser, loss).
- :mod:`training.loop`: :func:`~training.loop.fit`, the epochs, the run folder, validation.
- :mod:`training.evaluate`: scoring an ONNX model or a checkpoint on held-out pairs.
- :mod:`training.export`: checkpoint -> ONNX model with its contract.

What may import what: :mod:`training` may import :mod:`landslide_mapper.core` and nothing else
of :mod:`landslide_mapper`; nothing in :mod:`landslide_mapper` imports :mod:`training` (it runs
``python -m training.cli`` in a separate process). Inside the package the imports point one
way, with no cycles (function-level imports included): ``cli`` -> ``loop``, ``evaluate``,
``export``; ``loop`` -> ``trainer``, ``evaluate``, ``models``; ``trainer``, ``evaluate``,
``export`` -> ``models``; ``trainer`` -> ``pretrained`` -> ``config``, ``checkpoints``;
``models`` -> ``checkpoints``. The base modules (``config``, ``data``, ``losses``, ``metrics``,
``ddp``, ``checkpoints``, ``models``) import none of the modules above them.
"""
