"""Training chips from a raster and landslide polygons: image + mask GeoTIFFs and a manifest.

An annotator's edited polygons say where landslides are; the *checked area* says where the
annotator looked. Mask values: 1 landslide, 0 background (inside the checked area, outside every
polygon), 255 unknown (outside the checked area, raster nodata, or beyond the raster's edge). A
drawn polygon is a positive statement, so its pixels are landslide even outside the checked area.
Reading the polygon layers and the checked area is :mod:`.annotations`' work.

Tiles sit on a regular grid with stride ``tile_size - overlap`` starting at the raster's top-left
corner; the last row and column reach past the raster's edge and are padded (image: nodata or 0,
mask: unknown), so with no overlap no pixel is in two chips.
The held-out split is spatial: the tile grid is cut into blocks of ``block_size_tiles`` x
``block_size_tiles`` tiles, a seeded share of whole blocks goes to validation, and a training chip
that overlaps any validation block's pixels is dropped, so no ground is in both splits
(:mod:`.chip_grid`).

Chips are written to a temporary folder beside ``out_dir`` and renamed when complete; a failed or
cancelled export leaves nothing behind. ``manifest.json`` holds the counts and a training-config
snippet (``format: chips`` sources) that ``landslide-train`` reads directly. Its chip folders are
relative to the manifest's folder (``train``, ``val``), so a copied or moved chip folder trains on
its own chips.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from .. import staging
from ..contract import DTYPES
from ..errors import CancelledError, InputError, OutputError, reading
from ..paths import Place, check_distinct
from ..raster.io import check_georeferenced, check_written, open_input, pixel_size_m
from .annotations import PolygonLayer, area_geometry, polygonal_part, read_polygon_layer
from .chip_grid import ChipGrid, choose_val_blocks, tile_starts

LANDSLIDE, BACKGROUND, UNKNOWN = 1, 0, 255

Extent = tuple[float, float, float, float]

__all__ = [
    "BACKGROUND", "LANDSLIDE", "UNKNOWN", "ChipExportResult", "Extent", "PolygonLayer",
    "area_geometry", "chip_sources", "choose_val_blocks", "export_training_chips", "read_polygon_layer",
    "tile_starts",
]


@dataclass
class ChipExportResult:
    """What an export wrote: folders, counts per split, pixel counts and messages."""

    out_dir: Path
    manifest_path: Path
    train_chips: int
    val_chips: int
    skipped_empty: int
    skipped_unknown: int
    dropped_next_to_val: int
    polygons: int
    polygons_repaired: int
    polygons_outside: int
    reprojected_from: str | None
    pixels: dict[str, dict[str, int]]
    messages: list[str]

    @property
    def training_config(self) -> dict[str, Any]:
        """The manifest's training-config snippet, its chip folders resolved (absolute)."""
        manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return chip_sources(manifest["training_config"], self.out_dir, [])


def chip_sources(snippet: dict[str, Any], chips_dir: Path, messages: list[str]) -> dict[str, Any]:
    """``snippet`` (a manifest's training config) with its chip folders as absolute paths.

    A relative root is taken from the manifest's folder ``chips_dir``. Manifests of earlier
    versions stored absolute roots: the folder of that name inside ``chips_dir`` is used when it
    exists (a copied chip folder trains on its own chips), else the stored folder when it still
    exists (with a note); otherwise the chip folder is refused, naming what is missing.
    """
    sources = []
    for src in snippet["data"]["sources"]:
        stored = Path(str(src["root"]))
        root = stored if stored.is_absolute() else chips_dir / stored
        if stored.is_absolute() and (chips_dir / stored.name).is_dir():
            root = chips_dir / stored.name
        elif stored.is_absolute() and root.is_dir():
            messages.append(f"Chip folder {chips_dir}: its manifest points at {stored} for "
                            f"{src.get('name')}, outside the folder; training reads it from there.")
        if not root.is_dir():
            raise InputError(
                f"Chip folder {chips_dir}: its manifest.json names the chip folder "
                f"{src['root']!r} ({src.get('name')}), expected at {root}, found no such folder. "
                "Give the complete chip folder (manifest.json with its train/ and val/ folders) "
                "or export the chips again.")
        sources.append(dict(src, root=str(root.resolve())))
    return dict(snippet, data=dict(snippet["data"], sources=sources))


@dataclass
class _Settings:
    """How the raster is cut into chips and split (the export's keyword arguments)."""

    tile_size: int
    overlap: int
    keep_empty_fraction: float
    val_fraction: float
    block_size_tiles: int
    seed: int

    def check(self) -> None:
        if self.tile_size < 8:
            raise InputError(f"Tile size: expected at least 8 pixels, found {self.tile_size}.")
        if not 0 <= self.overlap < self.tile_size:
            raise InputError(f"Overlap: expected 0 <= overlap < tile size ({self.tile_size}), "
                             f"found {self.overlap}.")
        if not 0 <= self.keep_empty_fraction <= 1:
            raise InputError(f"Share of chips without landslides: expected 0 to 1, found "
                             f"{self.keep_empty_fraction}.")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"Validation share: expected 0 <= share < 1, found "
                             f"{self.val_fraction}.")
        if self.block_size_tiles < 1:
            raise InputError(f"Validation block size: expected at least 1 tile, found "
                             f"{self.block_size_tiles}.")


@dataclass
class _Labels:
    """What the masks are drawn from: the landslide polygons over the raster, the checked area."""

    layer: PolygonLayer
    geoms: np.ndarray  # the layer's polygons that intersect the raster
    outside: int  # polygons of the layer that lie outside the raster
    checked: Any  # the checked area (prepared), None when the whole raster counts as checked
    tree: Any  # an STRtree over ``geoms``, None when there is none


@dataclass
class _Tally:
    """What the tile loop did: chips written and pixels per split, tiles skipped or dropped."""

    chips: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    pixels: dict[str, dict[str, int]] = field(default_factory=lambda: {
        s: {"landslide": 0, "background": 0, "unknown": 0} for s in ("train", "val")})
    skipped_empty: int = 0
    skipped_unknown: int = 0
    dropped_next_to_val: int = 0

    def add(self, split: str, n_land: int, n_known: int, n_pixels: int) -> None:
        self.chips[split] += 1
        self.pixels[split]["landslide"] += n_land
        self.pixels[split]["background"] += n_known - n_land
        self.pixels[split]["unknown"] += n_pixels - n_known


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError(
            f"Chip folder {out_dir}: already exists and is not empty; expected a new or empty "
            "folder (chips are never overwritten). Choose another folder or delete this one.")
    parent = out_dir.parent
    if not parent.is_dir():
        raise OutputError(f"Chip folder {out_dir}: its parent folder {parent} does not exist. "
                          "Create it first or choose another place.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"Chip folder {out_dir}: the folder {parent} is not writable. Choose "
                          "a folder you can write to.")


def _band_indexes(ds, bands: Sequence[int] | None) -> list[int]:
    if not bands:
        return list(range(1, ds.count + 1))
    out = [int(b) for b in bands]
    bad = [b for b in out if not 1 <= b <= ds.count]
    if bad:
        raise InputError(f"Bands {out}: the raster has bands 1 to {ds.count}, found {bad}. Give "
                         "1-based band numbers that exist.")
    return out


def export_training_chips(
    raster_path: str | os.PathLike[str],
    polygons_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    checked_area: Any = None,
    tile_size: int = 128,
    overlap: int = 0,
    keep_empty_fraction: float = 0.2,
    val_fraction: float = 0.2,
    block_size_tiles: int = 4,
    seed: int = 0,
    bands: Sequence[int] | None = None,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> ChipExportResult:
    """Cut ``raster_path`` and the rasterized ``polygons_path`` into training chips in ``out_dir``.

    ``checked_area``: polygon file or extent in the raster's CRS; None counts the whole raster as
    checked. An empty polygon layer is refused unless a checked area is given: then it means "no
    landslide here" and gives all-background chips (``keep_empty_fraction`` then applies to all).
    Chips without a landslide pixel are kept with probability ``keep_empty_fraction`` (seeded);
    chips with no known pixel are never kept.
    """
    out_dir = Path(out_dir)
    settings = _Settings(tile_size, overlap, keep_empty_fraction, val_fraction, block_size_tiles,
                         seed)
    settings.check()
    check_distinct([("Input raster", raster_path), ("Landslide polygons", polygons_path),
                    ("Checked area", checked_area if isinstance(checked_area, (str, os.PathLike))
                     else None)], [Place("Chip folder", out_dir, folder=True)])
    _check_out_dir(out_dir)
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    messages: list[str] = []

    with open_input(raster_path) as ds:
        check_georeferenced(ds, f"Input raster {raster_path}")
        band_idx = _band_indexes(ds, bands)
        labels = _read_labels(ds, polygons_path, checked_area, messages)
        grid = ChipGrid.plan(ds.height, ds.width, tile_size, overlap, block_size_tiles,
                              val_fraction, seed)
        tmp = staging.temporary_sibling(out_dir)
        try:
            tally = _write_chips(ds, band_idx, labels, grid, settings, tmp, progress, is_canceled)
            _check_tally(tally, grid, settings, raster_path, messages)
            manifest = _manifest(ds, band_idx, labels, grid, settings, tally, messages,
                                 raster_path, polygons_path, checked_area)
            staging.write_text(tmp / "manifest.json", json.dumps(manifest, indent=1), "Manifest")
            if is_canceled():
                raise CancelledError("Chip export cancelled; nothing was written.")
            if out_dir.exists():
                out_dir.rmdir()  # empty (checked above)
            staging.publish(tmp, out_dir, "Chip folder")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    progress(1.0)
    return ChipExportResult(
        out_dir=out_dir, manifest_path=out_dir / "manifest.json",
        train_chips=tally.chips["train"], val_chips=tally.chips["val"],
        skipped_empty=tally.skipped_empty, skipped_unknown=tally.skipped_unknown,
        dropped_next_to_val=tally.dropped_next_to_val, polygons=int(len(labels.geoms)),
        polygons_repaired=labels.layer.repaired, polygons_outside=labels.outside,
        reprojected_from=labels.layer.reprojected_from, pixels=tally.pixels, messages=messages)


def _read_labels(ds, polygons_path: Any, checked_area: Any, messages: list[str]) -> _Labels:
    """The landslide polygons over the raster and the checked area; notes go to ``messages``."""
    layer = read_polygon_layer(polygons_path, ds.crs, what="Landslide polygons")
    messages += layer.messages
    raster_box = shapely.box(*ds.bounds)
    geoms = np.asarray(layer.geometries, dtype=object)
    inside = shapely.intersects(geoms, raster_box) if len(geoms) else np.zeros(0, bool)
    outside = int((~inside).sum())
    if outside:
        messages.append(f"Landslide polygons {polygons_path}: {outside} of {len(geoms)} "
                        "polygon(s) lie outside the raster and were ignored.")
    geoms = geoms[inside]
    checked = None
    if checked_area is not None:
        checked, area_msgs = area_geometry(checked_area, ds.crs, what="Checked area")
        shapely.prepare(checked)  # tested against every chip
        messages += area_msgs
        if not checked.intersects(raster_box):
            raise InputError(f"Checked area {checked_area}: does not overlap the raster "
                             f"(raster bounds {tuple(round(v, 6) for v in ds.bounds)}). "
                             "Check its CRS and extent.")
    if len(geoms) == 0:
        if checked is None:
            found = ("no polygons" if not layer.features_read else
                     f"{layer.features_read} feature(s), none of them inside the raster")
            raise InputError(
                f"Landslide polygons {polygons_path}: found {found}; expected landslide "
                "polygons over the raster. Draw or load the landslides, or give the checked "
                "area to export chips that say 'no landslide here'.")
        messages.append("No landslide polygon over the raster: every chip is background "
                        "inside the checked area.")
    tree = shapely.STRtree(geoms) if len(geoms) else None
    return _Labels(layer, geoms, outside, checked, tree)


def _write_chips(ds, band_idx: list[int], labels: _Labels, grid: ChipGrid, settings: _Settings,
                 tmp: Path, progress: Callable[[float], None],
                 is_canceled: Callable[[], bool]) -> _Tally:
    """Every tile of the grid -> a chip in ``tmp/<split>/{images,masks}``, unless it is dropped
    (a training tile next to a validation block) or skipped (no known pixel; without landslide
    and not drawn into the seeded share of empty chips kept)."""
    rng = np.random.default_rng(settings.seed)
    tally = _Tally()
    tile = grid.tile
    descriptions = [ds.descriptions[i - 1] for i in band_idx]
    dtype = _chip_dtype(ds, band_idx)
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (tmp / split / sub).mkdir(parents=True, exist_ok=True)
    done = 0
    for ri, r0 in enumerate(grid.rows):
        for ci, c0 in enumerate(grid.cols):
            if is_canceled():
                raise CancelledError("Chip export cancelled; nothing was written.")
            done += 1
            progress(done / grid.tiles)
            split = grid.split_of(ri, ci)
            if split == "train" and grid.touches_val(r0, c0):
                tally.dropped_next_to_val += 1
                continue
            window = Window(c0, r0, tile, tile)
            wt = window_transform(window, ds.transform)
            mask, image = _chip_mask(ds, window, wt, tile, band_idx, labels.tree, labels.geoms,
                                     labels.checked)
            n_land = int(np.count_nonzero(mask == LANDSLIDE))
            n_known = int(np.count_nonzero(mask != UNKNOWN))
            if n_known == 0:
                tally.skipped_unknown += 1
                continue
            if n_land == 0 and rng.random() >= settings.keep_empty_fraction:
                tally.skipped_empty += 1
                continue
            name = f"r{r0:06d}_c{c0:06d}.tif"
            _write_chip(tmp / split / "images" / name, image, ds.crs, wt, dtype, ds.nodata,
                        descriptions)
            _write_chip(tmp / split / "masks" / name, mask[None], ds.crs, wt, "uint8", UNKNOWN,
                        ["landslide mask (1 landslide, 0 background, 255 unknown)"])
            tally.add(split, n_land, n_known, tile * tile)
    return tally


def _check_tally(tally: _Tally, grid: ChipGrid, settings: _Settings, raster_path: Any,
                 messages: list[str]) -> None:
    """Refuse an export without a training chip; note one without a validation chip."""
    if tally.chips["train"] == 0:
        raise InputError(
            f"Chip export of {raster_path}: no training chip has a known pixel with the "
            f"settings given ({grid.tiles} tile(s), {tally.skipped_unknown} without known "
            f"pixels, {tally.skipped_empty} empty ones skipped, {tally.dropped_next_to_val} next "
            "to validation blocks). Raise the share of chips without landslides, lower the "
            "validation share, or check that the polygons and the checked area cover the raster.")
    if tally.chips["val"] == 0 and settings.val_fraction > 0:
        messages.append("No validation chip was written (the validation blocks hold no "
                        "known pixels or the tile grid has a single block); lower the "
                        "block size to get a held-out set.")


def _chip_dtype(ds, band_idx: list[int]) -> str:
    """The image chips' data type: one that holds every band kept."""
    return str(np.result_type(*[ds.dtypes[i - 1] for i in band_idx]))


def _manifest(ds, band_idx: list[int], labels: _Labels, grid: ChipGrid, settings: _Settings,
              tally: _Tally, messages: list[str], raster_path: Any,
              polygons_path: Any, checked_area: Any) -> dict[str, Any]:
    """``manifest.json``: where the chips come from, how they were cut, counts, training config."""
    nodata = ds.nodata
    descriptions = [ds.descriptions[i - 1] for i in band_idx]
    px_m = pixel_size_m(ds)
    layer = labels.layer
    return {
        "format": "landslide-mapper-chips",
        "version": 1,
        "raster": str(Path(raster_path).resolve()),
        "polygons": str(Path(str(polygons_path).split("|", 1)[0]).resolve()),
        "checked_area": (list(checked_area) if isinstance(checked_area, (tuple, list))
                         else str(checked_area) if checked_area is not None else None),
        "bands": [{"index": i, "description": d} for i, d in zip(band_idx, descriptions)],
        "dtype": _chip_dtype(ds, band_idx),
        "nodata": (nodata if nodata is None or np.isfinite(nodata) else str(nodata)),
        "crs": ds.crs.to_wkt(),
        "crs_name": ds.crs.to_string(),
        "pixel_size": [abs(ds.transform.a), abs(ds.transform.e)],
        "pixel_size_m": [round(px_m[0], 4), round(px_m[1], 4)],
        "tile_size": settings.tile_size,
        "overlap": settings.overlap,
        "keep_empty_fraction": settings.keep_empty_fraction,
        "val_fraction": settings.val_fraction,
        "block_size_tiles": settings.block_size_tiles,
        "seed": settings.seed,
        "mask_values": {"landslide": LANDSLIDE, "background": BACKGROUND, "unknown": UNKNOWN},
        "val_blocks": [list(b) for b in sorted(grid.val_blocks)],
        "counts": {"tiles": grid.tiles, "train": tally.chips["train"],
                   "val": tally.chips["val"], "skipped_empty": tally.skipped_empty,
                   "skipped_unknown": tally.skipped_unknown,
                   "dropped_next_to_val": tally.dropped_next_to_val},
        "pixels": tally.pixels,
        "polygons_summary": {"features": layer.features_read, "used": int(len(labels.geoms)),
                             "repaired": layer.repaired, "outside_raster": labels.outside,
                             "dropped": layer.dropped,
                             "reprojected_from": layer.reprojected_from},
        "messages": messages,
        "training_config": _training_config(settings.tile_size, tally.chips["val"] > 0,
                                            px_m, nodata, band_idx, descriptions,
                                            _chip_dtype(ds, band_idx)),
    }


def _training_config(tile_size: int, has_val: bool, px_m: tuple[float, float],
                     nodata: Any, band_idx: list[int], descriptions: list[str | None],
                     dtype: str) -> dict[str, Any]:
    """The training-config snippet ``landslide-train`` reads: chip sources and the contract.

    The contract states the chips' data type, and for 8-bit chips their value range (0..255),
    so a model trained on them refuses input far off it.
    """
    raw: dict[str, Any] = {"dtype": dtype} if dtype in DTYPES else {}
    if dtype == "uint8":
        raw["value_range"] = [0, 255]
    band_names = [d or f"band{i}" for d, i in zip(descriptions, band_idx)]
    # Roots relative to the manifest's folder: a copied or moved chip folder trains on itself.
    sources: list[dict[str, Any]] = [
        {"name": "chips_train", "format": "chips", "root": "train", "train": {}}]
    if has_val:
        sources.append({"name": "chips_val", "format": "chips", "root": "val", "val_only": True})
    return {
        "data": {"tile_size": tile_size, "sources": sources},
        "contract": {
            "pixel_size_m": round(float(np.mean(px_m)), 4),
            "tile_size": tile_size,
            "nodata_value": float(nodata) if nodata is not None and
            np.isfinite(nodata) else 0.0,
            "bands": [{"name": n, "description": f"raster band {i} of the chips' "
                       "source raster, raw values", "scale": 1.0, "offset": 0.0, **raw}
                      for n, i in zip(band_names, band_idx)],
        },
    }


def _chip_mask(ds, window: Window, wt: Any, tile: int, band_idx: list[int], tree: Any,
               geoms: np.ndarray, checked: Any) -> tuple[np.ndarray, np.ndarray]:
    """One chip: its uint8 mask (1 landslide, 0 background, 255 unknown) and its image."""
    chip_box = shapely.box(*rasterio.windows.bounds(window, ds.transform))
    if checked is None:
        known = np.ones((tile, tile), bool)
    elif checked.contains(chip_box):
        known = np.ones((tile, tile), bool)
    elif not checked.intersects(chip_box):
        known = np.zeros((tile, tile), bool)
    else:
        part = polygonal_part(checked.intersection(chip_box))  # a shared edge alone is no area
        known = np.zeros((tile, tile), bool) if part is None else rasterize(
            [(part, 1)], out_shape=(tile, tile), transform=wt, fill=0,
            dtype="uint8").astype(bool)
    # Beyond the raster's edge and raster nodata/NaN are unknown. Boundless reads (slower) only
    # for the chips that reach past the edge.
    edge = (window.row_off + tile > ds.height) or (window.col_off + tile > ds.width)
    with warnings.catch_warnings(), reading(f"Input raster {ds.name}"):
        warnings.simplefilter("ignore")
        valid = ds.read_masks(band_idx[0], window=window, boundless=edge) > 0
        for b in band_idx[1:]:
            valid &= ds.read_masks(b, window=window, boundless=edge) > 0
        data = ds.read(band_idx, window=window, boundless=edge,
                       fill_value=ds.nodata if ds.nodata is not None else 0)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    mask = np.full((tile, tile), UNKNOWN, np.uint8)
    mask[known] = BACKGROUND
    if tree is not None:
        hits = tree.query(chip_box, predicate="intersects")
        if len(hits):
            land = rasterize([(g, 1) for g in geoms[hits] if g.intersection(chip_box).area > 0]
                             or [(chip_box.exterior, 0)], out_shape=(tile, tile), transform=wt,
                             fill=0, dtype="uint8").astype(bool)
            mask[land] = LANDSLIDE
    mask[~valid] = UNKNOWN
    return mask, data


def _write_chip(path: Path, data: np.ndarray, crs: Any, transform: Any, dtype: str,
                nodata: Any, descriptions: Sequence[str | None]) -> None:
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=dtype, crs=crs, transform=transform, compress="deflate")
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype, copy=False))
        for i, d in enumerate(descriptions, start=1):
            if d:
                dst.set_band_description(i, d)
    check_written(path, staging.published_path(path), "Training chip")
