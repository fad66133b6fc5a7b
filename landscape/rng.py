"""Counter-based random numbers keyed by sample.

Sources that draw noise (PGD's random start, SGLD's initialisation and Langevin
noise, Gaussian corruption) must give every sample the same noise whatever batch
it lands in, so that an energy table does not depend on the batch size or on how
the data was sharded across processes. Instead of a stateful generator, the noise
for element ``j`` of the sample with key ``k`` (its index in the dataset) is a
hash of ``(seed, stream, k, j)`` (splitmix64), turned into uniforms and, by
Box-Muller, normals. It is vectorised, runs on any device, and costs a few integer
operations per element.

``stream`` separates independent draws for the same samples (e.g. SGLD step t
uses stream ``t``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["keyed_uniform", "keyed_normal"]

_MASK = lambda bits: (1 << bits) - 1  # noqa: E731


def _to_signed(v: int) -> int:
    v &= _MASK(64)
    return v - (1 << 64) if v >= (1 << 63) else v


_GOLDEN = _to_signed(0x9E3779B97F4A7C15)
_M1 = _to_signed(0xBF58476D1CE4E5B9)
_M2 = _to_signed(0x94D049BB133111EB)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns."""
    return (z >> s) & _MASK(64 - s)


def _splitmix(z: torch.Tensor) -> torch.Tensor:
    z = z + _GOLDEN
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def _splitmix_int(v: int) -> int:
    v = (v + 0x9E3779B97F4A7C15) & _MASK(64)
    v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & _MASK(64)
    v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & _MASK(64)
    return _to_signed(v ^ (v >> 31))


def _bits(keys: torch.Tensor, shape: tuple[int, ...], seed: int, stream: int, lane: int,
          device: torch.device | None) -> torch.Tensor:
    keys = torch.as_tensor(keys, dtype=torch.int64, device=device).view(-1, 1)
    per = math.prod(shape)
    elem = torch.arange(per, dtype=torch.int64, device=keys.device).view(1, -1)
    salt = _splitmix_int(_splitmix_int(int(seed)) ^ _splitmix_int((int(stream) << 8) | lane))
    counters = keys * per + elem
    return _splitmix(counters ^ salt)


def keyed_uniform(keys, shape, seed: int = 0, stream: int = 0, device=None) -> torch.Tensor:
    """Uniforms in [0, 1), float32, shape ``(len(keys), *shape)``; a pure function of its arguments."""
    shape = tuple(int(s) for s in shape)
    z = _bits(keys, shape, seed, stream, 0, device)
    u = _shr(z, 40).to(torch.float32) * (2.0 ** -24)
    return u.view(-1, *shape)


def keyed_normal(keys, shape, seed: int = 0, stream: int = 0, device=None) -> torch.Tensor:
    """Standard normals, float32, shape ``(len(keys), *shape)``; a pure function of its arguments.

    One 64-bit hash gives two 24-bit uniforms, which Box-Muller turns into a pair
    of normals (|n| <= 5.8).
    """
    shape = tuple(int(s) for s in shape)
    per = math.prod(shape)
    half = (per + 1) // 2
    z = _bits(keys, (half,), seed, stream, 1, device)
    u1 = (_shr(z, 40).to(torch.float32) + 1.0) * (2.0 ** -24)  # (0, 1]
    u2 = (_shr(z, 16) & _MASK(24)).to(torch.float32) * (2.0 ** -24)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2.0 * math.pi) * u2
    n = torch.cat([r * torch.cos(theta), r * torch.sin(theta)], dim=1)[:, :per]
    return n.contiguous().view(-1, *shape)
