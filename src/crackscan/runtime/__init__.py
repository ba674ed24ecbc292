"""Running models: the ONNX Runtime predictor, preprocessing, export (torch), tiling."""
