"""labkit: the code of the Diffusion Lab course (2-D diffusion models you can read and play with)."""

__version__ = "0.1.0"
