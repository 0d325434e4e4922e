"""Preprocessing against transformers' PIL-based Gemma 3 image processor (pan-and-scan on)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from engine import images
from engine.images import IMAGE_SIZE, crop_boxes, image_cost, open_image, preprocess

# (width, height): tiny, square, wide, tall, just above and below the 1.2 ratio, crops that
# would be narrower than 256 (so none), the 4-crop cap, odd sizes whose last crop is narrower.
SIZES = [(1, 1), (64, 64), (640, 480), (1000, 830), (1000, 840), (500, 200), (900, 600),
         (1792, 896), (3000, 1000), (4000, 300), (300, 4000), (257, 600), (511, 1024),
         (1301, 1000), (2000, 2001)]


@pytest.fixture(scope="module")
def processor():
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    return Gemma3ImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_pan_and_scan=True,
        pan_and_scan_min_crop_size=256, pan_and_scan_max_num_crops=4,
        pan_and_scan_min_ratio_to_activate=1.2,
    )


def noise(width, height, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = len(Image.new(mode, (1, 1)).getbands())
    values = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(values.squeeze(-1) if channels == 1 else values, mode)


def reference(processor, image):
    out = processor(images=[image], return_tensors="pt")
    return out["pixel_values"], int(out["num_crops"][0])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_preprocess_matches_transformers(processor, size):
    image = noise(*size)
    pixels, crops = preprocess(image, pan_and_scan=True)
    expected, expected_crops = reference(processor, image)
    assert crops == expected_crops == image_cost(image, pan_and_scan=True)
    assert pixels.dtype == torch.float32
    assert pixels.shape == (1 + crops, 3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK"])
def test_other_colour_modes_match_transformers(processor, mode):
    image = noise(700, 400, mode, seed=1)
    if mode == "P":
        image.info["transparency"] = 7  # palette entry 7 is see-through
    pixels, crops = preprocess(image, pan_and_scan=True)
    expected, expected_crops = reference(processor, image)
    assert crops == expected_crops == 2
    torch.testing.assert_close(pixels, expected, atol=1e-5, rtol=0)


def test_without_pan_and_scan_only_the_whole_image():
    image = noise(4000, 300)
    pixels, crops = preprocess(image, pan_and_scan=False)
    assert crops == 0 and pixels.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert image_cost(image, pan_and_scan=False) == 0
    whole, _ = preprocess(image, pan_and_scan=True)
    torch.testing.assert_close(pixels[0], whole[0], atol=0, rtol=0)


def test_values_span_minus_one_to_one():
    image = Image.new("RGB", (10, 10), (0, 255, 128))
    pixels, _ = preprocess(image, pan_and_scan=False)
    assert pixels[0, 0].eq(-1).all() and pixels[0, 1].eq(1).all()
    assert (pixels[0, 2] - (128 / 127.5 - 1)).abs().max() < 1e-6


def test_crops_tile_the_image_along_the_long_side():
    assert crop_boxes(1792, 896) == [(0, 0, 896, 896), (896, 0, 1792, 896)]
    assert crop_boxes(1000, 3000) == [(0, 0, 1000, 1000), (0, 1000, 1000, 2000),
                                      (0, 2000, 1000, 3000)]
    assert crop_boxes(1001, 300) == [(0, 0, 334, 300), (334, 0, 668, 300),
                                     (668, 0, 1001, 300)]  # the last crop is narrower
    assert crop_boxes(896, 896) == [] and crop_boxes(500, 200) == []
    assert len(crop_boxes(100_000, 300)) == 4


def test_crop_counts_survive_the_cheap_downscale_of_huge_photos():
    """open_image shrinks huge photos by an integer factor; the crop count must not move."""
    for width, height in [(12000, 9000), (12000, 4000), (20000, 3600), (4000, 12000),
                          (9000, 9000), (12000, 7500), (11000, 8000)]:
        factor = min(width, height) // (2 * IMAGE_SIZE)
        assert factor >= 2
        assert len(crop_boxes(width // factor, height // factor)) == len(crop_boxes(width, height))


@pytest.mark.parametrize("kind", ["JPEG", "PNG"])
def test_huge_photo_is_shrunk_first_without_changing_what_the_model_sees(kind):
    big = noise(180, 90).resize((7200, 3600), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    big.save(buffer, kind, **({"quality": 95} if kind == "JPEG" else {"compress_level": 1}))
    opened = open_image(buffer.getvalue(), name=f"big.{kind.lower()}")
    assert opened.mode == "RGB" and opened.size == (3600, 1800)  # JPEG draft or reduce(2)
    assert image_cost(opened, True) == image_cost(big, True) == 2
    ours, _ = preprocess(opened, True)
    full, _ = preprocess(big, True)
    difference = (ours - full).abs().mean()
    assert difference < 0.02  # JPEG loss plus two resamplings: the same picture


def test_rgb_passes_through_to_rgb_untouched():
    image = noise(31, 17)
    assert np.array_equal(np.asarray(images.to_rgb(image)), np.asarray(image))


def test_sha256_of_bytes_and_of_the_file_agree(tmp_path):
    data = b"\x89PNG not really"
    path = tmp_path / "x.png"
    path.write_bytes(data)
    assert images.sha256(path) == images.sha256(data) == images.sha256(str(path))
    assert images.sha256(data) != images.sha256(data + b"!") and len(images.sha256(data)) == 64


def halves(mode: str, left, right, side=2 * 1792) -> Image.Image:
    image = Image.new(mode, (side, side), left)
    image.paste(right, (side // 2, 0, side, side))
    return image


@pytest.mark.parametrize("mode, left, right, seen", [
    ("P", 0, 1, [(255, 255, 255), (0, 200, 0)]),  # palette entry 0 is see-through
    ("1", 0, 1, [(0, 0, 0), (255, 255, 255)]),
    ("I;16", 0, 65535, [(0, 0, 0), (255, 255, 255)]),
    ("LA", (0, 0), (90, 255), [(255, 255, 255), (90, 90, 90)]),
])
def test_huge_images_of_any_mode_shrink_with_their_colours(mode, left, right, seen):
    """Shrinking comes before colour conversion (a full-size copy); `reduce` takes few modes."""
    image = halves(mode, left, right)
    options = {}
    if mode == "P":
        image.putpalette([0, 0, 0, 0, 200, 0])
        options["transparency"] = 0
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    opened = open_image(buffer.getvalue())
    assert opened.mode == "RGB" and opened.size == (1792, 1792)
    assert [opened.getpixel((x, 900)) for x in (100, 1700)] == seen


@pytest.mark.parametrize("mode, values, expected", [
    ("I;16", [0, 32768, 65535], [0, 128, 255]),
    ("I", [0, 200, 255], [0, 200, 255]),  # 8-bit values kept as they are
    ("I", [0, 30000, 60000], [0, 117, 233]),  # 16-bit values scaled as 16-bit
    ("I", [-1000, 0, 1000], [0, 128, 255]),  # anything else: stretched over black to white
    ("F", [0.0, 0.5, 1.0], [0, 128, 255]),
    ("F", [-1.0, 0.0, 1.0], [0, 128, 255]),
    ("F", [-5.0, -5.0, -5.0], [0, 0, 0]),  # flat, no division by zero
])
def test_deep_greyscale_becomes_eight_bits_without_clipping(mode, values, expected):
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    image = Image.fromarray(np.array([values], dtype=dtype))
    assert image.mode == mode
    assert list(np.asarray(images.to_rgb(image))[0, :, 0]) == expected
