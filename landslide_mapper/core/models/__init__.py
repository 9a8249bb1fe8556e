"""Model files: finding them, running them, and small exact ones for tests.

    registry  the bundled models by name (``resources/models``), any other ``.onnx`` by path
    runtime   onnxruntime sessions: device, threads, input checks, output -> probability
    dummy     tiny ONNX models with a full contract whose output is a known function of the input
    quantize  int8 copies (onnxruntime static quantization), the contract carried over

Imports only :mod:`..contract` and :mod:`..errors`.
"""
