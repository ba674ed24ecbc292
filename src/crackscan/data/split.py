"""``crackscan data split``: a deterministic, stratified, duplicate-safe split file.

Rules, in order:

1. **Duplicates stay together.** Images are grouped by content hash (SHA-1 of the
   file bytes), groups whose images are near duplicates (re-encoded, resized or
   re-exposed copies: fingerprint similarity ≥ 0.9, :mod:`crackscan.data.similar`) are
   merged, and a group is assigned as a whole.
2. **An official split is kept.** When the layout has split folders, their members
   stay where they are. A missing ``val`` (or ``test``) with a fraction > 0 is carved
   out of ``train`` — that fraction *of train* — stratified and deterministic. Copies
   of an image that also sits in a later official split (test before val before train)
   are excluded from the earlier one, so the official test set stays whole and
   training never sees its images.
3. **Otherwise** groups are shuffled per stratum with a seeded RNG and dealt to test,
   val, then train until each reaches ``round(fraction × stratum size)``.

Strata are the class (class folders) or crack / no_crack (image/mask pairs: does the
mask have any foreground?). Split files store root-relative POSIX paths of images, so
they survive moving the data set.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crackscan.data.check import ImageFacts, ProgressCallback, inspect_image, inspect_mask, map_files
from crackscan.data.layouts import DatasetIndex, LayoutKind, Sample, index_dataset
from crackscan.data.similar import DEFAULT_SIMILARITY, link_groups, similar_pairs
from crackscan.imageio import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

SPLIT_FILE_VERSION = 1
SPLITS = ("train", "val", "test")
CRACK, NO_CRACK = "crack", "no_crack"


class SplitError(ValueError):
    """A split cannot be made, read or applied; the message says why."""


@dataclass
class SplitPlan:
    """Which image (root-relative POSIX path) goes to which split, and how it was made."""

    splits: dict[str, list[str]]
    stratify: str  # "class" or "crack"
    strata_counts: dict[str, dict[str, int]]
    kept_official: bool
    seed: int
    root: Path
    fractions: dict[str, float] = field(default_factory=lambda: {"val": 0.15, "test": 0.15})
    layout: str = ""
    strata: dict[str, str] = field(default_factory=dict)  # key -> stratum
    excluded: list[dict[str, str]] = field(default_factory=list)  # [{path, reason}]
    warnings: list[str] = field(default_factory=list)
    similarity: float | None = None  # near-duplicate threshold used; None: exact duplicates only
    version: int = SPLIT_FILE_VERSION

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(keys) for name, keys in self.splits.items()}

    def split_of(self, key: str) -> str | None:
        for name, keys in self.splits.items():
            if key in keys:
                return name
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tool": "crackscan data split",
            "root": str(self.root),
            "layout": self.layout,
            "seed": self.seed,
            "fractions": dict(self.fractions),
            "stratify": self.stratify,
            "kept_official": self.kept_official,
            "similarity": self.similarity,
            "counts": self.counts,
            "strata_counts": {k: dict(v) for k, v in self.strata_counts.items()},
            "excluded": [dict(e) for e in self.excluded],
            "warnings": list(self.warnings),
            "splits": {k: list(v) for k, v in self.splits.items()},
            "strata": dict(sorted(self.strata.items())),
        }


@dataclass
class _Group:
    """Samples sharing one content hash, or near duplicates of each other; assigned to a split as a whole."""

    keys: list[str]
    stratum: str

    @property
    def first(self) -> str:
        return self.keys[0]


def _deal(groups: list[_Group], fractions: dict[str, float], seed: int) -> dict[str, list[_Group]]:
    """Stratified, grouped assignment of ``groups`` to the splits named in ``fractions``.

    Splits not in ``fractions`` get nothing; what is left goes to ``train``.
    """
    out: dict[str, list[_Group]] = {name: [] for name in SPLITS}
    by_stratum: dict[str, list[_Group]] = {}
    for g in groups:
        by_stratum.setdefault(g.stratum, []).append(g)
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum], key=lambda g: g.first)
        # A seed per stratum (string seeds are hashed deterministically by random):
        # adding a class does not reshuffle the others.
        random.Random(f"crackscan-split/{seed}/{stratum}").shuffle(members)
        n = sum(len(g.keys) for g in members)
        targets = {name: round(frac * n) for name, frac in fractions.items()}
        filled = dict.fromkeys(targets, 0)
        for g in members:
            # Test first, then val: with tiny strata the rarer evaluation splits still get some.
            dest = next(
                (name for name in ("test", "val") if name in targets and filled[name] < targets[name]),
                "train",
            )
            out[dest].append(g)
            if dest in filled:
                filled[dest] += len(g.keys)
    return out


def _strata(
    index: DatasetIndex, keys: dict[Sample, str], max_pixels: int, excluded: list[dict[str, str]]
) -> dict[Sample, str]:
    """Stratum per sample; samples with an unreadable mask are excluded."""
    if index.layout is LayoutKind.CLASS_FOLDERS:
        return {s: s.label or "" for s in index.samples}
    masks = [s.mask for s in index.samples if s.mask is not None]
    facts = {f.path: f for f in map_files(lambda p: inspect_mask(p, max_pixels=max_pixels), masks)}
    out: dict[Sample, str] = {}
    for s in index.samples:
        f = facts.get(s.mask) if s.mask is not None else None
        if f is None or f.error is not None:
            reason = f.error if f is not None else "no mask"
            excluded.append({"path": keys[s], "reason": f"mask: {reason}"})
            continue
        out[s] = CRACK if f.has_crack else NO_CRACK
    return out


def make_split(
    root: str | Path,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    mask_dir: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    similarity: float | None = DEFAULT_SIMILARITY,
    progress: ProgressCallback | None = None,
    facts: dict[Path, ImageFacts] | None = None,
) -> SplitPlan:
    """Make a deterministic, stratified train/val/test split of the data set at ``root``.

    ``similarity``: near-duplicate threshold (None: exact duplicates only, and images are
    only hashed, not decoded). ``facts``: decoded :class:`ImageFacts` by path, used where
    present and filled with the ones decoded here — a caller that checks the same images
    again (a training run's cross-set copy check) passes one dict to both and decodes once.

    Raises :class:`~crackscan.data.layouts.LayoutError` when ``root`` is no data set
    and :class:`SplitError` for bad fractions or nothing to split.
    """
    for name, frac in (("val", val), ("test", test)):
        if not 0.0 <= frac < 1.0:
            raise SplitError(f"--{name} must be in [0, 1), got {frac}")
    if val + test >= 1.0:
        raise SplitError("val + test must leave something to train on (sum < 1)")
    root = Path(root)
    index = index_dataset(root, mask_dir=mask_dir)
    keys = {s: index.relative(s.image) for s in index.samples}
    excluded: list[dict[str, str]] = []
    warnings: list[str] = []

    strata = _strata(index, keys, max_pixels, excluded)
    # Near duplicates need the decoded image; without them only the bytes are hashed.
    # Either way a file that cannot be read (or decoded) would fail the same way in
    # training, so it is left out here with the reason.
    decode = similarity is not None
    # The caller's dict (decoded facts only: hash-only facts lack the fingerprint) is read and filled in place.
    facts = facts if facts is not None and decode else {}
    todo = [s.image for s in strata if s.image not in facts]
    facts.update(
        (f.path, f)
        for f in map_files(lambda p: inspect_image(p, decode=decode, max_pixels=max_pixels), todo, progress=progress)
    )
    by_hash: dict[str, list[Sample]] = {}
    digest: dict[Sample, str] = {}
    for s in strata:
        f = facts[s.image]
        if f.error is not None or f.sha1 is None:
            excluded.append({"path": keys[s], "reason": f"image: {f.error}"})
            continue
        by_hash.setdefault(f.sha1, []).append(s)
        digest[s] = f.sha1
    if not by_hash:
        raise SplitError(f"{root}: no usable samples to split")
    if similarity is not None:
        by_hash = _merge_near_duplicates(by_hash, facts, similarity, warnings)

    official = any(s.split for s in index.samples)
    assigned: dict[str, list[str]] = {name: [] for name in SPLITS}
    if official:
        _split_official(by_hash, keys, digest, strata, val, test, seed, assigned, excluded, warnings)
    else:
        groups = [
            _Group(sorted(keys[s] for s in members), _group_stratum(members, strata, keys, warnings))
            for members in by_hash.values()
        ]
        for name, gs in _deal(groups, {"val": val, "test": test}, seed).items():
            assigned[name] = [k for g in gs for k in g.keys]

    splits = {name: sorted(assigned[name]) for name in SPLITS}
    stratum_of = {keys[s]: st for s, st in strata.items()}
    strata_counts = {
        name: dict(sorted(Counter(stratum_of[k] for k in members).items())) for name, members in splits.items()
    }
    plan = SplitPlan(
        splits=splits,
        stratify="class" if index.layout is LayoutKind.CLASS_FOLDERS else "crack",
        strata_counts=strata_counts,
        kept_official=official,
        seed=seed,
        root=root,
        fractions={"val": val, "test": test},
        layout=str(index.layout),
        strata={k: stratum_of[k] for members in splits.values() for k in members},
        excluded=sorted(excluded, key=lambda e: e["path"]),
        warnings=warnings,
        similarity=similarity,
    )
    log.info("split %s: %s", root, plan.counts)
    return plan


def _merge_near_duplicates(
    by_hash: dict[str, list[Sample]],
    facts: dict[Path, ImageFacts],
    similarity: float,
    warnings: list[str],
) -> dict[str, list[Sample]]:
    """Merge the content-hash groups whose images are near duplicates of each other."""
    hashes = list(by_hash)
    prints = [facts[by_hash[h][0].image].fingerprint for h in hashes]
    linked = link_groups(len(hashes), similar_pairs(prints, similarity))
    merged = dict(by_hash)
    for group in linked:
        head = hashes[group[0]]
        for i in group[1:]:
            merged[head] = merged[head] + merged.pop(hashes[i])
    if linked:
        warnings.append(
            f"{len(linked)} group(s) of near duplicates (similarity ≥ {similarity}) kept together, "
            f"{sum(len(g) for g in linked)} distinct files; `crackscan data check` lists them"
        )
    return merged


def _group_stratum(
    members: list[Sample], strata: dict[Sample, str], keys: dict[Sample, str], warnings: list[str]
) -> str:
    labels = sorted({strata[s] for s in members})
    if len(labels) > 1:
        # Conflicting labels (check reports them as a problem): crack wins for masks,
        # the first class name otherwise; the group still stays together.
        warnings.append(
            "duplicates (exact or near) with different labels kept together: "
            + ", ".join(sorted(keys[s] for s in members))
        )
        return CRACK if CRACK in labels else labels[0]
    return labels[0]


def _split_official(
    by_hash: dict[str, list[Sample]],
    keys: dict[Sample, str],
    digest: dict[Sample, str],
    strata: dict[Sample, str],
    val: float,
    test: float,
    seed: int,
    assigned: dict[str, list[str]],
    excluded: list[dict[str, str]],
    warnings: list[str],
) -> None:
    """Keep the layout's splits; carve missing val/test out of train."""
    priority = {"test": 0, "val": 1, "train": 2}
    train_groups: list[_Group] = []
    present = {s.split for members in by_hash.values() for s in members}
    for members in by_hash.values():
        splits_here = {s.split or "train" for s in members}
        home = min(splits_here, key=lambda x: priority.get(x, 9))
        kept = [s for s in members if (s.split or "train") == home]
        for s in members:
            if (s.split or "train") != home:
                kind = "exact" if digest[s] == digest[kept[0]] else "near"
                excluded.append(
                    {
                        "path": keys[s],
                        "reason": f"{kind} duplicate of {keys[kept[0]]} in official split {home} (leakage)",
                    }
                )
        if home == "train":
            train_groups.append(_Group(sorted(keys[s] for s in kept), _group_stratum(kept, strata, keys, warnings)))
        else:
            assigned[home] += [keys[s] for s in kept]
    unknown = present - set(SPLITS) - {None}
    if unknown:
        warnings.append(f"unrecognised split names kept as train: {', '.join(sorted(str(u) for u in unknown))}")
    carve = {name: frac for name, frac in (("val", val), ("test", test)) if name not in present and frac > 0}
    dealt = _deal(train_groups, carve, seed)
    for name, gs in dealt.items():
        assigned[name] += [k for g in gs for k in g.keys]
    if carve:
        warnings.append(
            "carved "
            + ", ".join(f"{name} ({frac:.0%} of train)" for name, frac in carve.items())
            + " out of the official train split"
        )


def write_split(plan: SplitPlan, path: str | Path) -> None:
    """Write ``plan`` as human-readable JSON (version, seed, fractions, counts, keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_split(path: str | Path) -> SplitPlan:
    """Read a split file written by :func:`write_split`; :class:`SplitError` when invalid."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SplitError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SplitError(f"{path}: not a readable split file ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("splits"), dict):
        raise SplitError(f"{path}: not a crackscan split file (no 'splits' mapping)")
    version = raw.get("version")
    if version != SPLIT_FILE_VERSION:
        raise SplitError(f"{path}: split file version {version!r} is not supported (expected {SPLIT_FILE_VERSION})")
    splits: dict[str, list[str]] = {}
    for name, keys in raw["splits"].items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise SplitError(f"{path}: split {name!r} must be a list of paths")
        splits[str(name)] = list(keys)
    seen: dict[str, str] = {}
    for name, keys in splits.items():
        for k in keys:
            if k in seen:
                raise SplitError(f"{path}: {k} is in both {seen[k]} and {name}")
            seen[k] = name
    fractions = raw.get("fractions") or {}
    return SplitPlan(
        splits=splits,
        stratify=str(raw.get("stratify", "")),
        strata_counts={k: dict(v) for k, v in (raw.get("strata_counts") or {}).items()},
        kept_official=bool(raw.get("kept_official", False)),
        seed=int(raw.get("seed", 0)),
        root=Path(raw.get("root", ".")),
        fractions={k: float(v) for k, v in fractions.items()},
        layout=str(raw.get("layout", "")),
        strata=dict(raw.get("strata") or {}),
        excluded=list(raw.get("excluded") or []),
        warnings=list(raw.get("warnings") or []),
        similarity=float(raw["similarity"]) if isinstance(raw.get("similarity"), (int, float)) else None,
        version=version,
    )


def select_split(index: DatasetIndex, plan_or_path: SplitPlan | str | Path, split: str) -> list[Sample]:
    """The samples of ``index`` named by ``split`` of a plan (or split file), in plan order.

    Raises :class:`SplitError` for an unknown split name or when keys of the plan are
    not in the data set (a split made for another folder, or files removed since).
    """
    plan = plan_or_path if isinstance(plan_or_path, SplitPlan) else read_split(plan_or_path)
    if split not in plan.splits:
        raise SplitError(f"no split named {split!r} in the split file (has: {', '.join(plan.splits)})")
    by_key = {index.relative(s.image): s for s in index.samples}
    keys = plan.splits[split]
    missing = [k for k in keys if k not in by_key]
    if missing:
        shown = ", ".join(missing[:5]) + (f" … and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SplitError(
            f"{len(missing)} of {len(keys)} files of split {split!r} are not in the data set at "
            f"{index.root}: {shown} (was the split made for another folder, or were files removed?)"
        )
    return [by_key[k] for k in keys]
