"""The points a formula is measured at: in-domain samples, and a sweep of input magnitudes (each
swept variable, in a real or positive domain, scaled by s = +-2^k along a few random in-domain
directions; labels, binary targets and bounded inputs keep their sampled values). Every input is
drawn on the bfloat16 grid, so each is exact in every dtype and one truth serves all."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ...model.spec import Identity
from ...symbolic.graph import Graph
from .measure import DTYPES, DtypeInfo, rounded

SAMPLES = 32
DIRECTIONS = 2
EXPONENTS = np.concatenate([np.arange(-72, -12, 4), np.arange(-12, 13, 1), np.arange(14, 128, 4)])
"""The sweep's magnitudes, as powers of two: an octave apart where exp overflows (11, 17, 88,
709), four apart where only powers overflow (x**2 past 2^64 in float32); the edges of each
region are then bisected."""
WORK = 100_000
"""Operations x points per high-precision pass: fewer sweep points for large formulas."""
SWEPT_SIGNED = ("real", "invertible", "symmetric")
SWEPT_POSITIVE = ("positive", "spd")


@dataclass(frozen=True)
class Ray:
    """Inputs s * direction (swept entries) with the other entries fixed; s > 0 or s < 0."""

    base: np.ndarray
    signed: np.ndarray  # boolean mask of entries scaled by s
    positive: np.ndarray  # entries scaled by |s|
    sign: int
    direction: int

    def at(self, magnitude: float) -> np.ndarray:
        point = self.base.copy()
        point[self.signed] = self.sign * magnitude * self.base[self.signed]
        point[self.positive] = magnitude * self.base[self.positive]
        return point


@dataclass
class Points:
    columns: np.ndarray  # (points, inputs), each exact in bfloat16
    ray: np.ndarray  # ray index per point, -1 for an in-domain sample
    magnitude: np.ndarray  # |s| per sweep point (nan for samples)
    rays: list[Ray]
    label: str  # what the sweep scales, as a region names it: "z", "max|z|", "max|x, y|"
    scalar: bool  # one scalar variable swept: regions say z > a, z < -a


def on_grid(values: np.ndarray, info: DtypeInfo | None = None) -> np.ndarray:
    """Values rounded to bfloat16 (exact in every dtype), or to the given dtype's grid."""
    return rounded(values, info or DTYPES["bfloat16"])


def _draw(identity: Identity, graph: Graph, rng: np.random.Generator, count: int) -> np.ndarray:
    cols = []
    for var in identity.variables:
        shape = var.resolve(graph.sizes)
        values = var.domain.sample(rng, (count, *shape), graph.sizes)
        cols.append(var.domain.encode(values, graph.sizes).reshape(count, -1))
    return np.concatenate(cols, axis=1) if cols else np.zeros((count, 0))


def points_for(identity: Identity, graph: Graph, *, seed: int, samples: int, exponents: np.ndarray) -> Points:
    rng = np.random.default_rng([seed, zlib.crc32(identity.name.encode()), 15])
    width = sum(len(n.flat) for n in graph.variables)
    signed = np.zeros(width, dtype=bool)
    positive = np.zeros(width, dtype=bool)
    swept: list[str] = []
    at = 0
    for var, node in zip(identity.variables, graph.variables):
        n = len(node.flat)
        kind = var.domain.name
        if kind in SWEPT_SIGNED:
            signed[at:at + n] = True
        elif kind in SWEPT_POSITIVE:
            positive[at:at + n] = True
        if kind in SWEPT_SIGNED + SWEPT_POSITIVE:
            swept.append((var.name, n))  # type: ignore[arg-type]
        at += n
    base = on_grid(_draw(identity, graph, rng, samples))
    cols, ray_of, mags, rays = [base], [np.full(samples, -1)], [np.full(samples, np.nan)], []
    any_swept = signed.any() or positive.any()
    count = DIRECTIONS if (len(swept) > 1 or any(n > 1 for _, n in swept) or width > len(swept)) else 1
    if any_swept:
        directions = _draw(identity, graph, rng, count)
        for j in range(count):
            d = directions[j].copy()
            scale = np.abs(d[signed | positive]).max(initial=0.0)
            if scale == 0:
                continue
            d[signed | positive] = d[signed | positive] / scale
            d[positive] = np.abs(d[positive])
            if len(swept) == 1 and swept[0][1] == 1:  # one scalar: s is its value
                d[signed | positive] = 1.0
            d = on_grid(d)
            for sign in ((1, -1) if signed.any() else (1,)):
                ray = Ray(d, signed, positive, sign, j)
                mags_k = 2.0 ** exponents
                block = np.stack([ray.at(m) for m in mags_k])
                cols.append(on_grid(block))
                ray_of.append(np.full(len(mags_k), len(rays)))
                mags.append(mags_k)
                rays.append(ray)
    names = [name for name, _ in swept]
    scalar = len(swept) == 1 and swept[0][1] == 1
    label = names[0] if scalar else f"max|{', '.join(names)}|"
    return Points(np.concatenate(cols), np.concatenate(ray_of), np.concatenate(mags), rays, label, scalar)


__all__ = ["SAMPLES", "DIRECTIONS", "EXPONENTS", "WORK", "Ray", "Points", "on_grid", "points_for"]
