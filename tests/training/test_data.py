"""Readers, label rules, splits and augmentation; real-data readers where the data is present."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import shared_data
from training.data import IGNORE, LabelRule, holdout_split, kfold_split, read_pair, tile_pairs
from training.data.augment import Augment, crop_or_pad, random_tile
from training.data.dataset import SegmentationDataset, band_statistics
from training.data.readers import chip_pairs, l4s_pairs


def test_label_rules():
    plane = np.array([[0, 1, 255], [127, 128, 3]], np.uint8)
    assert LabelRule.parse("value=1").apply(plane).tolist() == [[0, 1, 0], [0, 0, 0]]
    assert LabelRule.parse({"threshold": 127}).apply(plane).tolist() == [[0, 0, 1], [0, 1, 0]]
    assert LabelRule.parse("value=1,ignore=255").apply(plane).tolist() == [
        [0, 1, IGNORE],
        [0, 0, 0],
    ]
    assert LabelRule().apply(plane).tolist() == [[0, 1, 1], [1, 1, 1]]
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1] = (200, 128, 0)
    rgb[0, 2] = (200, 0, 0)
    assert LabelRule.parse("colour=200:128:0").apply(rgb).tolist() == [[0, 1, 0]]
    with pytest.raises(ValueError, match="one of"):
        LabelRule.parse("value=1,threshold=3")


def test_tile_pairs_pair_image_n_with_mask_n(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(3):
        Image.fromarray(np.full((8, 8, 3), k, np.uint8)).save(
            tmp_path / "images" / f"image_{k}.png"
        )
        Image.fromarray(np.full((8, 8), 255 * (k % 2), np.uint8)).save(
            tmp_path / "masks" / f"mask_{k}.png"
        )
    pairs = tile_pairs(tmp_path, label=LabelRule(threshold=127))
    assert [p.mask.name for p in pairs] == ["mask_0.png", "mask_1.png", "mask_2.png"]
    img, mask = read_pair(pairs[1])
    assert img.shape == (3, 8, 8) and img.dtype == np.float32 and float(img[0, 0, 0]) == 1.0
    assert mask.min() == mask.max() == 1


def test_missing_mask_is_named(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    with pytest.raises(FileNotFoundError, match="a.png"):
        tile_pairs(tmp_path)


def test_chips_read_nodata_as_ignored(tmp_path):
    from tests.support import make_raster

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    make_raster(tmp_path / "images" / "c1.tif", np.ones((3, 4, 4), np.uint16) * 7)
    m = np.array([[0, 1, 9, 9]] * 4, np.uint8)
    make_raster(tmp_path / "masks" / "c1.tif", m, nodata=9)
    (pair,) = chip_pairs(tmp_path)
    img, mask = read_pair(pair)
    assert img.shape == (3, 4, 4)
    assert mask[0].tolist() == [0, 1, IGNORE, IGNORE]


def test_holdout_split_is_fixed_by_seed_and_disjoint():
    items = [f"tile_{i}" for i in range(25)]
    tr, va = holdout_split(items, 0.2, seed=0)
    tr2, va2 = holdout_split(list(reversed(items)), 0.2, seed=0)
    assert va == va2 and len(va) == 5 and set(tr) | set(va) == set(items) and not set(tr) & set(va)
    assert holdout_split(items, 0.2, seed=1)[1] != va


def test_kfold_covers_every_item_once():
    items = list(range(11))
    seen = []
    for fold in range(4):
        tr, va = kfold_split(items, 4, fold, seed=3, key=lambda x: x)
        assert not set(tr) & set(va)
        seen += va
    assert sorted(seen) == items


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    image = rng.random((2, 32, 32)).astype(np.float32)
    mask = (image[0] > 0.5).astype(np.uint8)  # the mask is a function of band 0
    aug = Augment(flips=True, rotate90=True, brightness=(1.0, 1.0))
    for seed in range(8):
        img, msk = random_tile(image, mask, 32, aug, np.random.default_rng(seed))
        assert np.array_equal(msk, (img[0] > 0.5).astype(np.uint8))


def test_brightness_scales_image_only():
    image = np.ones((1, 16, 16), np.float32)
    mask = np.ones((16, 16), np.uint8)
    img, msk = random_tile(
        image, mask, 16, Augment(brightness=(2.0, 2.0)), np.random.default_rng(0)
    )
    assert np.allclose(img, 2.0) and msk.min() == 1


def test_padding_is_ignored_and_crop_is_sized():
    image = np.ones((3, 10, 12), np.float32)
    mask = np.ones((10, 12), np.uint8)
    img, msk = crop_or_pad(image, mask, 16, None)
    assert img.shape == (3, 16, 16) and msk.shape == (16, 16)
    assert (msk == IGNORE).sum() == 16 * 16 - 10 * 12


def test_dataset_normalises_with_band_statistics(tmp_path):
    from tests.support import make_raster
    from training.data.readers import Pair

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    vals = [np.full((2, 8, 8), v, np.float32) for v in (1.0, 3.0)]
    for k, v in enumerate(vals):
        make_raster(tmp_path / "images" / f"c{k}.tif", v)
        make_raster(tmp_path / "masks" / f"c{k}.tif", np.zeros((8, 8), np.uint8))
    pairs = chip_pairs(tmp_path)
    mean, std = band_statistics(pairs)
    assert mean == pytest.approx([2.0, 2.0]) and std == pytest.approx([1.0, 1.0])
    ds = SegmentationDataset(pairs, mean, std, train=False)
    img, msk = ds[0]
    assert img.shape == (2, 32, 32)  # padded to a multiple of 32
    assert float(img[0, 0, 0]) == pytest.approx(-1.0)
    assert int((msk == IGNORE).sum()) == 32 * 32 - 64
    assert isinstance(pairs[0], Pair)


@pytest.mark.realdata
def test_real_l4s_h5_flat_layout():
    root = shared_data("landslide4sense_h5")
    pairs = l4s_pairs(root)
    assert len(pairs) == 21
    img, mask = read_pair(pairs[0])
    assert img.shape == (14, 128, 128) and set(np.unique(mask)) <= {0, 1}


@pytest.mark.realdata
def test_real_l4s_rgb_and_palette_and_value_masks():
    rgb = tile_pairs(
        shared_data("landslide4sense_rgb"),
        "val/images",
        "val/masks",
        label=LabelRule(threshold=127),
        channels=[0, 1, 2],
    )
    assert len(rgb) == 395
    img, mask = read_pair(rgb[0])
    assert img.shape == (3, 128, 128)
    cos = tile_pairs(
        shared_data("coseismic_rgb"),
        "Images",
        "Masks",
        label=LabelRule(value=1, ignore=255),
        channels=[0, 1, 2],
    )
    assert len(cos) == 25
    shapes = {read_pair(p)[0].shape[0] for p in cos}
    assert shapes == {3}  # the 4-band tile is cut to RGB
    uav = tile_pairs(
        shared_data("uav_atali"), "train_images", "train_masks", label=LabelRule(value=1)
    )
    assert len(uav) == 384
    nepal = tile_pairs(shared_data("nepal_rgb"), label=LabelRule(threshold=100))
    _, m = read_pair(nepal[0])
    assert set(np.unique(m)) <= {0, 1}


def test_named_holdout_and_unknown_names(tiles):
    from tests.training.conftest import tiny_config
    from training.config import build_sources, load_config

    cfg = tiny_config(tiles)
    cfg["data"]["sources"][0]["holdout"] = {"names": ["tile_1", "tile_4.png"]}
    s = build_sources(load_config(cfg))
    assert sorted(p.image.name for p in s.val["synthetic"]) == ["tile_1.png", "tile_4.png"]
    assert len(s.train) == 4
    cfg["data"]["sources"][0]["holdout"] = {"names": ["tile_99"]}
    with pytest.raises(ValueError, match="tile_99"):
        build_sources(load_config(cfg))
