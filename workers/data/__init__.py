"""Training data for the creation GANs: the built-in procedural dataset and colour attributes."""
