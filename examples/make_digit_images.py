"""Write scikit-learn's handwritten digits as PNG files, one sub-folder per digit, for trying the
image commands of the command line.

1,797 images of 8x8 pixels (the UCI digits that ship inside scikit-learn, values 0-16, stretched
to 0-255) go to examples/digits/<digit>/<index>.png.
Run: .venv/bin/python examples/make_digit_images.py
"""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

folder = Path(__file__).parent / "digits"
digits = load_digits()
pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
for digit in range(10):
    (folder / str(digit)).mkdir(parents=True, exist_ok=True)
for index, (image, digit) in enumerate(zip(pixels, digits.target)):
    Image.fromarray(image, mode="L").save(folder / str(digit) / f"{index:04d}.png")
print(f"wrote {len(pixels)} images of 8x8 pixels to {folder}/<digit>/")
