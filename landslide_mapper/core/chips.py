"""Training chips from a raster and landslide polygons: image + mask GeoTIFFs and a manifest.

An annotator's edited polygons say where landslides are; the *checked area* says where the
annotator looked. Mask values: 1 landslide, 0 background (inside the checked area, outside every
polygon), 255 unknown (outside the checked area, raster nodata, or beyond the raster's edge). A
drawn polygon is a positive statement, so its pixels are landslide even outside the checked area.

Tiles sit on a regular grid with stride ``tile_size - overlap`` starting at the raster's top-left
corner; the last row and column reach past the raster's edge and are padded (image: nodata or 0,
mask: unknown), so with no overlap no pixel is in two chips.
The held-out split is spatial: the tile grid is cut into blocks of ``block_size_tiles`` x
``block_size_tiles`` tiles, a seeded share of whole blocks goes to validation, and a training chip
that overlaps any validation block's pixels is dropped, so no ground is in both splits.

Chips are written to a temporary folder beside ``out_dir`` and renamed when complete; a failed or
cancelled export leaves nothing behind. ``manifest.json`` holds the counts and a training-config
snippet (``format: chips`` sources) that ``landslide-train`` reads directly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
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

from .errors import CancelledError, InputError, OutputError
from .raster import check_georeferenced, open_input, pixel_size_m

LANDSLIDE, BACKGROUND, UNKNOWN = 1, 0, 255

Extent = tuple[float, float, float, float]


# ---------------------------------------------------------------------------------------------
# Polygon layers


@dataclass
class PolygonLayer:
    """Polygons of a vector file in a target CRS, with what happened on the way."""

    path: Path
    geometries: list[Any]
    features_read: int = 0
    repaired: int = 0
    dropped: int = 0
    reprojected_from: str | None = None
    ids: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _polygonal(geom: Any) -> Any:
    """The polygonal part of a geometry (lines and points of a repaired geometry dropped)."""
    if geom is None or geom.is_empty:
        return None
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def read_polygon_layer(path: str | os.PathLike[str], target_crs: Any, *, what: str) -> PolygonLayer:
    """Read a polygon file (first layer, or ``path|layername=NAME``) in ``target_crs``.

    Geometries in another CRS are reprojected (pyproj); invalid ones are repaired with
    ``shapely.make_valid`` and counted; empty, null and non-polygonal ones are dropped and counted.
    A file without a CRS is taken to be in ``target_crs`` (with a message).
    """
    import fiona
    from pyproj import CRS, Transformer

    text = str(path)
    layer = None
    if "|layername=" in text:
        text, layer = text.split("|layername=", 1)
        layer = layer.split("|", 1)[0]
    p = Path(text.split("|", 1)[0])
    if not p.exists():
        raise InputError(f"{what} {p}: file not found. Give a polygon file (GeoPackage, "
                         "shapefile, GeoJSON).")
    try:
        src = fiona.open(p, layer=layer) if layer else fiona.open(p)
    except Exception as exc:  # fiona raises several unrelated types
        raise InputError(f"{what} {p}: not a vector file OGR can read ({exc}). Expected a "
                         "polygon layer (GeoPackage, shapefile, GeoJSON).") from exc
    out = PolygonLayer(p, [])
    with src:
        geom_type = str(src.schema.get("geometry", "")).lower()
        if geom_type and not any(t in geom_type for t in ("polygon", "unknown", "any", "geometry")):
            raise InputError(f"{what} {p}: expected polygons, found a layer of "
                             f"{src.schema.get('geometry')} geometries. Choose a polygon layer.")
        source_wkt = src.crs_wkt or ""
        target = CRS.from_user_input(target_crs.to_wkt() if hasattr(target_crs, "to_wkt")
                                     else target_crs)
        transformer = None
        if not source_wkt:
            out.messages.append(f"{what} {p}: has no CRS; taken to be in the raster's CRS "
                                f"({target.name}).")
        else:
            source = CRS.from_wkt(source_wkt)
            if not source.equals(target, ignore_axis_order=True):
                transformer = Transformer.from_crs(source, target, always_xy=True)
                out.reprojected_from = source.to_string()
                out.messages.append(f"{what} {p}: reprojected from {source.name} to the raster's "
                                    f"CRS ({target.name}).")
        for i, feature in enumerate(src):
            out.features_read += 1
            g = feature.geometry
            if g is None:
                out.dropped += 1
                continue
            geom = shapely.geometry.shape(g)
            if transformer is not None and not geom.is_empty:
                geom = shapely.transform(geom, lambda xy: np.column_stack(
                    transformer.transform(xy[:, 0], xy[:, 1])))
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
                out.repaired += 1
            geom = _polygonal(geom)
            if geom is None:
                out.dropped += 1
                continue
            out.geometries.append(geom)
            out.ids.append(int(feature.id) if str(feature.id).lstrip("-").isdigit() else i)
    if out.repaired:
        out.messages.append(f"{what} {p}: {out.repaired} invalid geometr"
                            f"{'y' if out.repaired == 1 else 'ies'} repaired (make_valid).")
    if out.dropped:
        out.messages.append(f"{what} {p}: {out.dropped} empty or non-polygonal feature(s) "
                            "ignored.")
    return out


def area_geometry(area: Any, target_crs: Any, *, what: str) -> tuple[Any, list[str]]:
    """An area given as a polygon file or ``(xmin, ymin, xmax, ymax)`` (target CRS) -> geometry."""
    if isinstance(area, (tuple, list)) and len(area) == 4:
        x0, y0, x1, y1 = (float(v) for v in area)
        if not (x0 < x1 and y0 < y1):
            raise InputError(f"{what}: expected an extent xmin < xmax, ymin < ymax, found {area}.")
        return shapely.box(x0, y0, x1, y1), []
    layer = read_polygon_layer(area, target_crs, what=what)
    if not layer.geometries:
        raise InputError(f"{what} {layer.path}: holds no polygons. Draw the area that was "
                         "checked, or leave it empty to count the whole raster as checked.")
    return shapely.union_all(layer.geometries), layer.messages


# ---------------------------------------------------------------------------------------------
# Tiling and the spatial split


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets along one axis: ``i * stride`` for ``i < n``, ``n = ceil((length - tile) /
    stride) + 1`` (one tile when ``length <= tile``); the last tile may reach past the edge."""
    n = 1 if length <= tile else math.ceil((length - tile) / stride) + 1
    return [i * stride for i in range(n)]


def choose_val_blocks(n_block_rows: int, n_block_cols: int, fraction: float,
                      seed: int) -> set[tuple[int, int]]:
    """A seeded share of whole blocks: ``round(fraction * n)``, at least one when ``n > 1``."""
    blocks = [(r, c) for r in range(n_block_rows) for c in range(n_block_cols)]
    if fraction <= 0 or len(blocks) < 2:
        return set()
    n_val = min(max(int(round(fraction * len(blocks))), 1), len(blocks) - 1)
    order = np.random.default_rng(seed).permutation(len(blocks))
    return {blocks[i] for i in order[:n_val]}


# ---------------------------------------------------------------------------------------------
# The export


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
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))["training_config"]


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
    if tile_size < 8:
        raise InputError(f"Tile size: expected at least 8 pixels, found {tile_size}.")
    if not 0 <= overlap < tile_size:
        raise InputError(f"Overlap: expected 0 <= overlap < tile size ({tile_size}), found "
                         f"{overlap}.")
    if not 0 <= keep_empty_fraction <= 1:
        raise InputError(f"Share of chips without landslides: expected 0 to 1, found "
                         f"{keep_empty_fraction}.")
    if not 0 <= val_fraction < 1:
        raise InputError(f"Validation share: expected 0 <= share < 1, found {val_fraction}.")
    if block_size_tiles < 1:
        raise InputError(f"Validation block size: expected at least 1 tile, found "
                         f"{block_size_tiles}.")
    _check_out_dir(out_dir)
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    messages: list[str] = []

    with open_input(raster_path) as ds:
        source = f"Input raster {raster_path}"
        check_georeferenced(ds, source)
        band_idx = _band_indexes(ds, bands)
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
        stride = tile_size - overlap
        rows = tile_starts(ds.height, tile_size, stride)
        cols = tile_starts(ds.width, tile_size, stride)
        n_br = math.ceil(len(rows) / block_size_tiles)
        n_bc = math.ceil(len(cols) / block_size_tiles)
        val_blocks = choose_val_blocks(n_br, n_bc, val_fraction, seed)

        def block_extent(br: int, bc: int) -> tuple[int, int, int, int]:
            r_ids = range(br * block_size_tiles, min((br + 1) * block_size_tiles, len(rows)))
            c_ids = range(bc * block_size_tiles, min((bc + 1) * block_size_tiles, len(cols)))
            return (rows[r_ids[0]], rows[r_ids[-1]] + tile_size,
                    cols[c_ids[0]], cols[c_ids[-1]] + tile_size)

        val_extents = [block_extent(*b) for b in sorted(val_blocks)]

        def touches_val(r0: int, c0: int) -> bool:
            return any(r0 < e[1] and e[0] < r0 + tile_size and c0 < e[3] and e[2] < c0 + tile_size
                       for e in val_extents)

        rng = np.random.default_rng(seed)
        tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
        counts = {"train": 0, "val": 0}
        pixels = {s: {"landslide": 0, "background": 0, "unknown": 0} for s in ("train", "val")}
        skipped_empty = skipped_unknown = dropped = 0
        nodata = ds.nodata
        descriptions = [ds.descriptions[i - 1] for i in band_idx]
        dtype = str(np.result_type(*[ds.dtypes[i - 1] for i in band_idx]))
        total = len(rows) * len(cols)
        try:
            for split in ("train", "val"):
                for sub in ("images", "masks"):
                    (tmp / split / sub).mkdir(parents=True, exist_ok=True)
            done = 0
            for ri, r0 in enumerate(rows):
                for ci, c0 in enumerate(cols):
                    if is_canceled():
                        raise CancelledError("Chip export cancelled; nothing was written.")
                    done += 1
                    progress(done / total)
                    split = "val" if (ri // block_size_tiles, ci // block_size_tiles) in \
                        val_blocks else "train"
                    if split == "train" and touches_val(r0, c0):
                        dropped += 1
                        continue
                    window = Window(c0, r0, tile_size, tile_size)
                    wt = window_transform(window, ds.transform)
                    mask, image = _chip_mask(ds, window, wt, tile_size, band_idx, tree, geoms,
                                             checked)
                    n_land = int(np.count_nonzero(mask == LANDSLIDE))
                    n_known = int(np.count_nonzero(mask != UNKNOWN))
                    if n_known == 0:
                        skipped_unknown += 1
                        continue
                    if n_land == 0 and rng.random() >= keep_empty_fraction:
                        skipped_empty += 1
                        continue
                    name = f"r{r0:06d}_c{c0:06d}.tif"
                    _write_chip(tmp / split / "images" / name, image, ds.crs, wt, dtype, nodata,
                                descriptions)
                    _write_chip(tmp / split / "masks" / name, mask[None], ds.crs, wt,
                                "uint8", UNKNOWN, ["landslide mask (1 landslide, 0 background, "
                                                   "255 unknown)"])
                    counts[split] += 1
                    pixels[split]["landslide"] += n_land
                    pixels[split]["background"] += n_known - n_land
                    pixels[split]["unknown"] += tile_size * tile_size - n_known
            if counts["train"] == 0:
                raise InputError(
                    f"Chip export of {raster_path}: no training chip has a known pixel with the "
                    f"settings given ({total} tile(s), {skipped_unknown} without known pixels, "
                    f"{skipped_empty} empty ones skipped, {dropped} next to validation blocks). "
                    "Raise the share of chips without landslides, lower the validation share, "
                    "or check that the polygons and the checked area cover the raster.")
            if counts["val"] == 0 and val_fraction > 0:
                messages.append("No validation chip was written (the validation blocks hold no "
                                "known pixels or the tile grid has a single block); lower the "
                                "block size to get a held-out set.")
            final_train = out_dir / "train"
            final_val = out_dir / "val"
            px_m = pixel_size_m(ds)
            band_names = [d or f"band{i}" for d, i in zip(descriptions, band_idx)]
            sources: list[dict[str, Any]] = [
                {"name": "chips_train", "format": "chips", "root": str(final_train.resolve()),
                 "train": {}}]
            if counts["val"]:
                sources.append({"name": "chips_val", "format": "chips",
                                "root": str(final_val.resolve()), "val_only": True})
            manifest = {
                "format": "landslide-mapper-chips",
                "version": 1,
                "raster": str(Path(raster_path).resolve()),
                "polygons": str(Path(str(polygons_path).split("|", 1)[0]).resolve()),
                "checked_area": (list(checked_area) if isinstance(checked_area, (tuple, list))
                                 else str(checked_area) if checked_area is not None else None),
                "bands": [{"index": i, "description": d} for i, d in zip(band_idx, descriptions)],
                "dtype": dtype,
                "nodata": (nodata if nodata is None or np.isfinite(nodata) else str(nodata)),
                "crs": ds.crs.to_wkt(),
                "crs_name": ds.crs.to_string(),
                "pixel_size": [abs(ds.transform.a), abs(ds.transform.e)],
                "pixel_size_m": [round(px_m[0], 4), round(px_m[1], 4)],
                "tile_size": tile_size,
                "overlap": overlap,
                "keep_empty_fraction": keep_empty_fraction,
                "val_fraction": val_fraction,
                "block_size_tiles": block_size_tiles,
                "seed": seed,
                "mask_values": {"landslide": LANDSLIDE, "background": BACKGROUND,
                                "unknown": UNKNOWN},
                "val_blocks": [list(b) for b in sorted(val_blocks)],
                "counts": {"tiles": total, "train": counts["train"], "val": counts["val"],
                           "skipped_empty": skipped_empty, "skipped_unknown": skipped_unknown,
                           "dropped_next_to_val": dropped},
                "pixels": pixels,
                "polygons_summary": {"features": layer.features_read,
                                     "used": int(len(geoms)), "repaired": layer.repaired,
                                     "outside_raster": outside, "dropped": layer.dropped,
                                     "reprojected_from": layer.reprojected_from},
                "messages": messages,
                "training_config": {
                    "data": {"tile_size": tile_size, "sources": sources},
                    "contract": {
                        "pixel_size_m": round(float(np.mean(px_m)), 4),
                        "tile_size": tile_size,
                        "nodata_value": float(nodata) if nodata is not None and
                        np.isfinite(nodata) else 0.0,
                        "bands": [{"name": n, "description": f"raster band {i} of the chips' "
                                   "source raster, raw values", "scale": 1.0, "offset": 0.0}
                                  for n, i in zip(band_names, band_idx)],
                    },
                },
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            if is_canceled():
                raise CancelledError("Chip export cancelled; nothing was written.")
            if out_dir.exists():
                out_dir.rmdir()  # empty (checked above)
            os.replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    progress(1.0)
    return ChipExportResult(
        out_dir=out_dir, manifest_path=out_dir / "manifest.json", train_chips=counts["train"],
        val_chips=counts["val"], skipped_empty=skipped_empty, skipped_unknown=skipped_unknown,
        dropped_next_to_val=dropped, polygons=int(len(geoms)),
        polygons_repaired=layer.repaired, polygons_outside=outside,
        reprojected_from=layer.reprojected_from, pixels=pixels, messages=messages)


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
        part = _polygonal(checked.intersection(chip_box))  # a shared edge alone is no area
        known = np.zeros((tile, tile), bool) if part is None else rasterize(
            [(part, 1)], out_shape=(tile, tile), transform=wt, fill=0,
            dtype="uint8").astype(bool)
    # Beyond the raster's edge and raster nodata/NaN are unknown. Boundless reads (slower) only
    # for the chips that reach past the edge.
    edge = (window.row_off + tile > ds.height) or (window.col_off + tile > ds.width)
    valid = ds.read_masks(band_idx[0], window=window, boundless=edge) > 0
    for b in band_idx[1:]:
        valid &= ds.read_masks(b, window=window, boundless=edge) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
