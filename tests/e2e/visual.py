"""Visual checks against committed reference images, compared pixel by pixel in Chromium
itself (no image library needed).

Tolerance: a pixel differs when any of its channels moves by more than ``CHANNEL_TOLERANCE``
(of 255: font hinting and anti-aliasing move edges by less); a match allows at most
``PIXEL_TOLERANCE`` of the pixels to differ (0.1%). The state dot is the smallest thing that
must be seen: recoloured, it moves about 0.5% of a desktop bar's pixels, so 1% would miss it;
the same build on the same Chromium and fonts differs by 0 pixels. Sizes must be equal.
Dynamic parts (counters, countdowns) are masked.

``UPDATE_REFERENCE_IMAGES=1 pytest -m e2e tests/e2e/test_mobile.py`` rewrites the references;
review and commit them (``tests/e2e/reference/*.png``). What was compared is saved beside the
other screenshots (``test-artifacts/screenshots/visual-<name>.png``).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from playwright.sync_api import Locator, Page

from tests.e2e.conftest import SCREENSHOTS

REFERENCES = Path(__file__).resolve().parent / "reference"
CHANNEL_TOLERANCE = 48
PIXEL_TOLERANCE = 0.001

_DIFF = """async ([actual, reference, tolerance]) => {
  const pixels = async (data) => {
    const image = new Image();
    image.src = `data:image/png;base64,${data}`;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    return context.getImageData(0, 0, canvas.width, canvas.height);
  };
  const [a, b] = await Promise.all([pixels(actual), pixels(reference)]);
  const sizes = [a.width, a.height, b.width, b.height];
  if (a.width !== b.width || a.height !== b.height) return { sizes, differing: -1 };
  let differing = 0;
  for (let i = 0; i < a.data.length; i += 4) {
    for (let c = 0; c < 4; c += 1) {
      if (Math.abs(a.data[i + c] - b.data[i + c]) > tolerance) {
        differing += 1;
        break;
      }
    }
  }
  return { sizes, differing };
}"""


class Diff(TypedDict):
    sizes: list[int]
    differing: int


def expect_like_reference(
    page: Page, element: Locator, name: str, mask: Sequence[Locator] = ()
) -> None:
    """``element`` looks like ``reference/<name>.png`` within the stated tolerance."""
    actual = element.screenshot(mask=list(mask), animations="disabled", caret="hide")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"visual-{name}.png").write_bytes(actual)
    reference = REFERENCES / f"{name}.png"
    if os.environ.get("UPDATE_REFERENCE_IMAGES") == "1":
        REFERENCES.mkdir(exist_ok=True)
        reference.write_bytes(actual)
        return
    assert reference.is_file(), f"no reference {reference}: run with UPDATE_REFERENCE_IMAGES=1"
    encoded = [base64.b64encode(data).decode() for data in (actual, reference.read_bytes())]
    diff: Diff = page.evaluate(_DIFF, [*encoded, CHANNEL_TOLERANCE])
    width, height, ref_width, ref_height = diff["sizes"]
    assert diff["differing"] >= 0, (
        f"{name}: {width}x{height}, the reference is {ref_width}x{ref_height}"
    )
    share = diff["differing"] / (width * height)
    assert share <= PIXEL_TOLERANCE, (
        f"{name}: {share:.2%} of the pixels differ from the reference (at most "
        f"{PIXEL_TOLERANCE:.1%} may); compare test-artifacts/screenshots/visual-{name}.png"
    )
