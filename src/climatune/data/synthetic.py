"""A synthetic coupled climate archive with known drivers, written to Zarr.

The generator makes a toy climate whose causal structure is known exactly, so that
forecasting skill, fine-tuning and explanation methods can be checked against the truth.
Fields are float32 on a regular global grid (lat cell centres, ascending; lon in [0, 360)),
in the ``noleap`` calendar for both frequencies: monthly values are stamped mid-month,
daily values at 12:00. Below, phi is latitude, t the years since ``start_year``, f the
fraction of the year, E the ENSO state (unit variance), and "cos2" is cos(phi)**2. Every
coefficient is a field of :class:`Coefficients`, and all of them are written to the store's
attributes, one key each and together as JSON in ``attrs["coupling_coefficients"]``.

* **Meridional gradient**: tas = 250 + 50 cos2 K, sst = 268 + 34 cos2 K,
  zg = 5200 + 680 cos2 m; tas is cooled by a lapse rate of 0.0065 K/m of ``orography``.
* **Seasonal cycle**: A sin(phi) cos(2 pi (f - peak)), so the amplitude grows with
  abs(lat) and the hemispheres are in opposite phase; A = 3 K over the ocean (peak at
  day 225) and 12 K over land (peak at day 200). zg follows the ocean cycle at 20 m/K.
* **Land-sea contrast**: a fixed land mask of six smooth continents (a fixed internal
  seed shapes their coasts; the user's seed does not change the mask), with the tropical
  Pacific (20S-20N, 150E-270E) kept ocean and the teleconnection region kept land.
  ``sst`` and ``siconc`` are NaN over land.
* **Forced warming**: 0.02 (1 + 1.5 sin(phi)**2) t K, i.e. 0.02 K/yr at the equator and
  2.5 times that at the poles, added to tas and sst (and 20 m/K to zg). Over melting sea
  ice the ice-albedo term below amplifies the realised tas warming further.
* **ENSO**: an AR(2) damped oscillator E with a 4-year period, a 2-year damping time and
  unit variance. sst gets 1.0 K x E x exp(-lat^2/2/8^2 - (lon-225)^2/2/35^2). tas over
  the ocean follows the local SST anomaly (ENSO + ocean noise) with coefficient 0.8.
  Teleconnection: in the region ``lat=30:60,lon=230:270`` (land) tas gets 1.5 K x E
  lagged 3 months and zg 30 m x E lagged 3 months (tapering outside the box with a 5 deg
  Gaussian); zg also gets 15 m x E x exp(-lat^2/2/15^2) with no lag. In that region E is
  the only interannual driver of tas besides noise. ``nino34`` is the area-weighted SST
  anomaly (sst minus its forced mean, seasonal cycle and trend) over 5S-5N, 190-240E,
  weighted by each cell's overlap with the box so that coarse grids work too.
* **Ice-albedo coupling**: sst has a smooth floor at freezing, 271.35 + 0.5 log(1 +
  exp((sst_raw - 271.35)/0.5)) K; siconc = 1 / (1 + exp((sst - 272.35)/0.3)); tas over
  ocean is lowered by 8 K x siconc. Land has ``orography`` of at least 50 m and a lapse
  rate effect on tas; ``orography`` is the only static field.
* **Weather noise**: white noise smoothed by a Gaussian of 8 deg (tas, sst) or 15 deg
  (zg) on both axes (FFT, periodic in longitude), rescaled to standard deviations 1.0 K
  (tas), 0.3 K (sst) and 20 m (zg), red in time with e-folding times 3 days (tas, zg) and
  90 days (sst).

The same seed gives identical arrays, whatever the write chunking; memory stays bounded
by one block of steps, whatever ``years``.

An :class:`ArchiveSpec` generalises the archive for the synthetic GCM families of
:mod:`climatune.data.gcm_family`: its own :class:`Coefficients`, a cftime calendar
(``noleap``, ``360_day``, ``standard``/``gregorian``, ...; the seasonal cycle and the
trend follow the fraction of each calendar year), a :class:`Bias` added to tas, a
separate random stream, NaN cells in tas, and variable names and units of its own. The
default spec is the archive described above, bit for bit.

Examples
--------
>>> ds = synthetic_dataset(years=1, grid=(8, 16))
>>> sorted(ds.data_vars)
['nino34', 'orography', 'siconc', 'sst', 'tas', 'zg']
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cftime
import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter1d

from climatune import __version__
from climatune.errors import ClimatuneError
from climatune.utils.atomic import atomic_path, check_new_path

__all__ = [
    "ArchiveSpec",
    "Bias",
    "check_spec",
    "fill_store",
    "Coefficients",
    "COEFFICIENTS",
    "parse_grid",
    "write_archive",
    "write_synthetic",
    "synthetic_dataset",
]

MIN_GRID = (8, 16)
MAX_GRID = (1800, 3600)
MAX_YEARS = 2000
FREQS = ("monthly", "daily")
CALENDAR = "noleap"
CALENDARS = ("noleap", "365_day", "360_day", "standard", "gregorian", "proleptic_gregorian")
KELVIN_TO_CELSIUS = 273.15
_LAND_SEED = 20240917  # shapes the coasts; fixed so every archive shares one land mask
_CHUNK_CELLS = 1 << 22  # at most 16 MiB per float32 Zarr chunk
_BLOCK_CELLS = 1 << 20  # cells generated per block (bounds the working memory)
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=float)
_MONTH_START = np.concatenate([[0.0], np.cumsum(_MONTH_DAYS)[:-1]])
# (name, centre lat, centre lon, half-height deg, half-width deg, peak orography m)
_CONTINENTS = (
    ("north_america", 47.0, 253.0, 27.0, 40.0, 1800.0),
    ("south_america", -17.0, 298.0, 35.0, 17.0, 1500.0),
    ("eurasia", 50.0, 85.0, 24.0, 70.0, 2200.0),
    ("africa", 3.0, 20.0, 32.0, 22.0, 900.0),
    ("australia", -25.0, 134.0, 11.0, 17.0, 400.0),
)


@dataclass(frozen=True)
class Coefficients:
    """The documented coefficients of the synthetic climate (units in the names)."""

    tas_pole_K: float = 250.0
    tas_equator_K: float = 300.0
    sst_pole_K: float = 268.0
    sst_equator_K: float = 302.0
    zg_pole_m: float = 5200.0
    zg_equator_m: float = 5880.0
    lapse_rate_K_per_m: float = 0.0065
    seasonal_amplitude_ocean_K: float = 3.0
    seasonal_amplitude_land_K: float = 12.0
    seasonal_peak_day_ocean: float = 225.0
    seasonal_peak_day_land: float = 200.0
    zg_thickness_m_per_K: float = 20.0
    trend_equator_K_per_year: float = 0.02
    polar_amplification: float = 2.5
    enso_period_years: float = 4.0
    enso_damping_years: float = 2.0
    enso_sst_amplitude_K: float = 1.0
    enso_pattern_lat: float = 0.0
    enso_pattern_lon: float = 225.0
    enso_pattern_sigma_lat_deg: float = 8.0
    enso_pattern_sigma_lon_deg: float = 35.0
    ocean_to_tas_coupling: float = 0.8
    enso_teleconnection_region: str = "lat=30:60,lon=230:270"
    enso_teleconnection_lag_months: int = 3
    enso_teleconnection_taper_deg: float = 5.0
    enso_tas_teleconnection_K: float = 1.5
    enso_zg_teleconnection_m: float = 30.0
    enso_zg_tropical_m: float = 15.0
    enso_zg_tropical_sigma_lat_deg: float = 15.0
    nino34_region: str = "lat=-5:5,lon=190:240"
    tropical_pacific_ocean_region: str = "lat=-20:20,lon=150:270"
    freezing_point_K: float = 271.35
    sst_floor_width_K: float = 0.5
    siconc_half_K: float = 272.35
    siconc_width_K: float = 0.3
    ice_albedo_tas_K: float = 8.0
    tas_noise_K: float = 1.0
    sst_noise_K: float = 0.3
    zg_noise_m: float = 20.0
    noise_length_deg: float = 8.0
    zg_noise_length_deg: float = 15.0
    atmosphere_memory_days: float = 3.0
    ocean_memory_days: float = 90.0

    def to_dict(self) -> dict[str, float | int | str]:
        """All coefficients as a plain dict (JSON- and Zarr-attribute-safe)."""
        return dataclasses.asdict(self)


COEFFICIENTS = Coefficients()


@dataclass(frozen=True)
class Bias:
    """A fixed error of a model's tas: a global offset plus a smooth spatial pattern.

    The pattern is a random combination of the real spherical harmonics of degrees 1 to
    ``BIAS_DEGREE`` (drawn from ``pattern_seed``), scaled to an area-weighted RMS of
    ``pattern_K`` over the sphere. Every such harmonic has zero mean over the sphere, so
    the global mean of the bias is ``offset_K`` (up to the grid's discretisation), and the
    pattern is one continuous field: it is the same wherever two grids overlap.

    Examples
    --------
    >>> bias = Bias(offset_K=1.0, pattern_K=0.5, pattern_seed=3)
    >>> field = bias.field(np.array([-45.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0]))
    >>> field.shape
    (2, 4)
    """

    offset_K: float = 0.0
    pattern_K: float = 0.0
    pattern_seed: int = 0

    def pattern(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """The zero-mean pattern on the ``(lat, lon)`` cell centres (degrees), float64."""
        from scipy.special import lpmv

        x = np.sin(np.deg2rad(np.asarray(lat, float)))[:, None]
        lam = np.deg2rad(np.asarray(lon, float))[None, :]
        rng = np.random.default_rng(int(self.pattern_seed))
        total, weight = np.zeros((x.size, lam.size)), 0.0
        for degree in range(1, BIAS_DEGREE + 1):
            for order in range(degree + 1):
                legendre = lpmv(order, degree, x)
                norm = 2.0 / (2 * degree + 1) * math.factorial(degree + order)
                norm /= math.factorial(degree - order)
                waves = [np.cos(order * lam)] + ([np.sin(order * lam)] if order else [])
                for wave in waves:
                    # mean square over the sphere of P_l^m(sin phi) cos(m lon) (or sin)
                    mean_square = norm * (2.0 if order == 0 else 1.0) / 4.0
                    a = float(rng.standard_normal())
                    total += a * legendre * wave / np.sqrt(mean_square)
                    weight += a * a
        return self.pattern_K * total / np.sqrt(weight)

    def field(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Offset plus pattern on the ``(lat, lon)`` cell centres, in K (float64)."""
        return self.offset_K + self.pattern(lat, lon)

    def to_dict(self) -> dict[str, float | int]:
        """The bias as attributes (``bias_offset_K``, ``bias_pattern_K``, ...)."""
        return {f"bias_{k}": v for k, v in dataclasses.asdict(self).items()}


BIAS_DEGREE = 3  # the bias patterns are made of spherical harmonics of degrees 1..3


@dataclass(frozen=True)
class ArchiveSpec:
    """Everything that makes one synthetic archive: size, physics, calendar and looks.

    The defaults (and ``coefficients=None``, read as :data:`COEFFICIENTS` when the archive
    is made) give the archive of :func:`write_synthetic`, bit for bit.

    Parameters
    ----------
    years, grid, freq, seed, start_year
        As for :func:`write_synthetic`.
    coefficients
        The physics; None for :data:`COEFFICIENTS`.
    calendar
        The cftime calendar of the time axis, one of :data:`CALENDARS`.
    forcing_start_year
        The year the forced warming starts from (None: ``start_year``); a record that
        starts later (observations) then carries the warming accumulated before it.
    stream
        A separate random stream for the internal variability (None: the plain archive's).
    bias
        Added to tas after the physics (it does not feed back on sea ice or zg).
    missing_fraction, missing_seed, missing_south_of
        tas is NaN, at every step, in a fixed random ``missing_fraction`` of the cells and
        south of latitude ``missing_south_of`` (None: nowhere): gaps in an observed record.
    names
        ``{variable: name written}``, e.g. ``{"tas": "ts"}``.
    celsius
        The temperatures (tas, sst) written in degC instead of K.
    attrs
        Extra global attributes (a model's identity).
    """

    years: int
    grid: tuple[int, int] = (64, 128)
    freq: str = "monthly"
    seed: int = 0
    start_year: int = 1950
    coefficients: Coefficients | None = None
    calendar: str = CALENDAR
    forcing_start_year: int | None = None
    stream: int | None = None
    bias: Bias | None = None
    missing_fraction: float = 0.0
    missing_seed: int = 0
    missing_south_of: float | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    celsius: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def coeffs(self) -> Coefficients:
        """The coefficients in force (:data:`COEFFICIENTS` when none were given)."""
        return COEFFICIENTS if self.coefficients is None else self.coefficients

    def written_name(self, name: str) -> str:
        """The name ``name`` has in the store."""
        return self.names.get(name, name)


_VAR_ATTRS = {
    "tas": ("K", "air_temperature", "Near-surface air temperature", "atmosphere"),
    "sst": ("K", "sea_surface_temperature", "Sea surface temperature", "ocean"),
    "siconc": ("1", "sea_ice_area_fraction", "Sea-ice area fraction", "sea_ice"),
    "zg": ("m", "geopotential_height", "Geopotential height", "atmosphere"),
    "nino34": (
        "K",
        "surface_temperature_anomaly",
        "Nino 3.4 index: SST anomaly averaged over 5S-5N, 190-240E",
        "ocean",
    ),
    "orography": ("m", "surface_altitude", "Surface altitude", "static"),
}


def _box(text: str) -> tuple[float, float, float, float]:
    """``"lat=a:b,lon=c:d"`` -> (a, b, c, d)."""
    parts = dict(p.split("=") for p in text.split(","))
    (a, b), (c, d) = (map(float, parts[k].split(":")) for k in ("lat", "lon"))
    return a, b, c, d


def parse_grid(text: str) -> tuple[int, int]:
    """Parse ``"NLATxNLON"`` (e.g. ``"64x128"``) into ``(nlat, nlon)``.

    Raises
    ------
    ClimatuneError
        If the text is not two positive integers joined by ``x`` or the grid is
        smaller than 8x16 or larger than 1800x3600.

    Examples
    --------
    >>> parse_grid("64x128")
    (64, 128)
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if match is None:
        raise ClimatuneError(f"--grid {text!r} is not NLATxNLON; give e.g. --grid 64x128")
    grid = (int(match.group(1)), int(match.group(2)))
    _check_grid(grid)
    return grid


def _check_grid(grid: tuple[int, int]) -> tuple[int, int]:
    try:
        nlat, nlon = (int(n) for n in grid)
    except (TypeError, ValueError):
        raise ClimatuneError(f"grid {grid!r} is not (nlat, nlon); give e.g. 64x128") from None
    if not (MIN_GRID[0] <= nlat <= MAX_GRID[0] and MIN_GRID[1] <= nlon <= MAX_GRID[1]):
        raise ClimatuneError(
            f"grid {nlat}x{nlon} is out of range; nlat must be {MIN_GRID[0]}..{MAX_GRID[0]} "
            f"and nlon {MIN_GRID[1]}..{MAX_GRID[1]}, e.g. 64x128"
        )
    return nlat, nlon


def _check_args(years: int, grid: tuple[int, int], freq: str, seed: int, start_year: int) -> None:
    _check_grid(grid)
    if isinstance(years, bool) or not isinstance(years, (int, np.integer)):
        raise ClimatuneError(f"years must be a whole number, got {years!r}")
    if not 1 <= years <= MAX_YEARS:
        raise ClimatuneError(f"--years {years} is out of range; give 1..{MAX_YEARS}")
    if freq not in FREQS:
        raise ClimatuneError(f"--freq {freq!r} is not supported; choose one of {', '.join(FREQS)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ClimatuneError(f"--seed {seed!r} must be a non-negative integer")
    if not 1 <= start_year <= 9999 - years:
        raise ClimatuneError(f"start_year {start_year} is out of range; give 1..{9999 - years}")


def _periodic(dlon: np.ndarray) -> np.ndarray:
    return (dlon + 180.0) % 360.0 - 180.0


def _box_weight(x: np.ndarray, lo: float, hi: float, taper: float) -> np.ndarray:
    """1 inside [lo, hi], Gaussian fall-off (sigma ``taper``) outside."""
    dist = np.maximum(np.maximum(lo - x, x - hi), 0.0)
    return np.exp(-0.5 * (dist / taper) ** 2)


def _in_box(lat: np.ndarray, lon: np.ndarray, box: str) -> np.ndarray:
    a, b, c, d = _box(box)
    return (lat >= a) & (lat <= b) & (lon >= c) & (lon <= d)


def _land_and_orography(
    lat: np.ndarray, lon: np.ndarray, c: Coefficients
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed smooth continents: super-ellipses whose coasts are wobbled by a few low-order
    harmonics from a fixed seed, plus Antarctica; returns (land, orography)."""
    rng = np.random.default_rng(_LAND_SEED)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = np.zeros(la.shape, bool)
    orog = np.zeros(la.shape)
    for _name, clat, clon, half_lat, half_lon, height in _CONTINENTS:
        u, v = (la - clat) / half_lat, _periodic(lo - clon) / half_lon
        radius = (np.abs(u) ** 3 + np.abs(v) ** 3) ** (1.0 / 3.0)
        theta = np.arctan2(u, v)
        k = np.arange(2, 5)[:, None, None]
        a, b = rng.normal(0.0, 0.06, (2, 3, 1, 1))
        coast = 1.0 + (a * np.cos(k * theta) + b * np.sin(k * theta)).sum(axis=0)
        inside = radius < coast
        land |= inside
        orog = np.maximum(orog, np.where(inside, height * (1.0 - (radius / coast) ** 2), 0.0))
    edge = -68.0 + 4.0 * np.sin(np.deg2rad(2.0 * lo) + 1.0)
    antarctica = la < edge
    land |= antarctica
    orog = np.maximum(orog, np.where(antarctica, 2500.0 * np.clip((edge - la) / 15.0, 0, 1), 0.0))
    land &= ~_in_box(la, lo, c.tropical_pacific_ocean_region)
    land |= _in_box(la, lo, c.enso_teleconnection_region)
    orog = np.where(land, np.maximum(orog, 50.0), 0.0)
    return land, orog


def _box_area_weights(lat: np.ndarray, lon: np.ndarray, box: str) -> np.ndarray:
    """Area of each cell's overlap with ``box`` (works on grids coarser than the box)."""
    a, b, c, d = _box(box)
    dlat, dlon = 180.0 / lat.size, 360.0 / lon.size
    lat_lo, lat_hi = np.clip(lat - dlat / 2, -90, 90), np.clip(lat + dlat / 2, -90, 90)
    wy = np.clip(
        np.sin(np.deg2rad(np.minimum(lat_hi, b))) - np.sin(np.deg2rad(np.maximum(lat_lo, a))),
        0,
        None,
    )
    wx = np.clip(np.minimum(lon + dlon / 2, d) - np.maximum(lon - dlon / 2, c), 0, None)
    return wy[:, None] * wx[None, :]


class _RedSpatialNoise:
    """Unit-variance noise: Gaussian-smoothed in space, AR(1) in time, one seeded stream."""

    def __init__(
        self, rng: np.random.Generator, nlat: int, nlon: int, length_deg: float, rho: float
    ) -> None:
        self.rng, self.rho, self.shape, self.state = rng, rho, (nlat, nlon), None
        k = np.fft.rfftfreq(nlon)
        self.h_lon = np.exp(-0.5 * (2 * np.pi * k * length_deg / (360.0 / nlon)) ** 2)
        mult = np.full(k.size, 2.0)
        mult[0] = 1.0
        if nlon % 2 == 0:
            mult[-1] = 1.0
        var_lon = float((mult * self.h_lon**2).sum() / nlon)
        # Latitude: a reflecting Gaussian filter (no BLAS: threaded BLAS spins on busy
        # machines); each row is rescaled to unit variance, computed from its impulse response.
        self.sigma_lat = length_deg / (180.0 / nlat)
        m = gaussian_filter1d(np.eye(nlat), self.sigma_lat, axis=0, mode="reflect")
        self.scale_lat = (1.0 / np.sqrt((m**2).sum(axis=1) * var_lon)).astype(np.float32)[:, None]
        self.h_lon = self.h_lon.astype(np.float32)

    def draw(self, n: int) -> np.ndarray:
        white = self.rng.standard_normal((n, *self.shape), dtype=np.float32)
        smooth = np.fft.irfft(np.fft.rfft(white, axis=-1) * self.h_lon, n=self.shape[1], axis=-1)
        out = gaussian_filter1d(smooth, self.sigma_lat, axis=1, mode="reflect", output=np.float32)
        out *= self.scale_lat
        scale = np.float32(np.sqrt(1.0 - self.rho**2))
        for i in range(n):
            if self.state is not None:
                out[i] = self.rho * self.state + scale * out[i]
            self.state = out[i]
        return out


class _Enso:
    """AR(2) damped oscillator with unit stationary variance, keeping a lag history."""

    def __init__(
        self, rng: np.random.Generator, dt_years: float, lag: int, c: Coefficients
    ) -> None:
        r = np.exp(-dt_years / c.enso_damping_years)
        self.phi1, self.phi2 = 2 * r * np.cos(2 * np.pi * dt_years / c.enso_period_years), -(r**2)
        var = (1 - self.phi2) / ((1 + self.phi2) * ((1 - self.phi2) ** 2 - self.phi1**2))
        self.sigma, self.rng, self.lag = 1.0 / np.sqrt(var), rng, lag
        spin = int(10 * c.enso_damping_years / dt_years) + lag + 2
        self.hist = np.zeros(2)
        self.hist = self._run(spin)[-(lag + 2) :]

    def _run(self, n: int) -> np.ndarray:
        eps = self.rng.standard_normal(n) * self.sigma
        x = np.concatenate([self.hist[-2:], np.empty(n)])
        for i in range(n):
            x[i + 2] = self.phi1 * x[i + 1] + self.phi2 * x[i] + eps[i]
        return x[2:]

    def step(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (E now, E lagged by ``lag`` steps) for the next ``n`` steps."""
        full = np.concatenate([self.hist, self._run(n)])
        self.hist = full[-(self.lag + 2) :]
        return full[-n:], full[len(full) - n - self.lag : len(full) - self.lag]


def _lag_steps(freq: str, c: Coefficients) -> int:
    """The ENSO teleconnection lag in time steps of ``freq``."""
    per_year = 12 if freq == "monthly" else 365
    return int(round(c.enso_teleconnection_lag_months * per_year / 12))


def _time_axis(spec: ArchiveSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(days since ``start_year``-01-01 at mid-step, years since then, fraction of the
    calendar year) of every step, in ``spec.calendar``; monthly steps are stamped
    mid-month, daily ones at 12:00."""
    cal, start = spec.calendar, spec.start_year
    units = f"days since {start:04d}-01-01"
    if spec.freq == "monthly":
        edges = [
            cftime.datetime(start + i // 12, i % 12 + 1, 1, calendar=cal)
            for i in range(12 * spec.years + 1)
        ]
        bounds = np.asarray(cftime.date2num(edges, units, calendar=cal), dtype=float)
        days = (bounds[:-1] + bounds[1:]) / 2.0
    else:
        end = cftime.datetime(start + spec.years, 1, 1, calendar=cal)
        days = np.arange(int(round(float(cftime.date2num(end, units, calendar=cal))))) + 0.5
    firsts = [cftime.datetime(start + y, 1, 1, calendar=cal) for y in range(spec.years + 1)]
    year_starts = np.asarray(cftime.date2num(firsts, units, calendar=cal), dtype=float)
    year = np.searchsorted(year_starts, days, side="right") - 1
    frac = (days - year_starts[year]) / np.diff(year_starts)[year]
    return days, year + frac, frac


class _Generator:
    """Streams the archive block by block; all state for continuity lives here."""

    def __init__(self, spec: ArchiveSpec) -> None:
        self.spec = spec
        c = self.c = spec.coeffs
        nlat, nlon = _check_grid(spec.grid)
        freq, seed = spec.freq, spec.seed
        self.freq, self.start_year = freq, spec.start_year
        self.steps_per_year = 12 if freq == "monthly" else 365
        self.dt_days = 365.0 / self.steps_per_year
        self.lag = _lag_steps(freq, c)
        self.lat = -90.0 + (np.arange(nlat) + 0.5) * 180.0 / nlat
        self.lon = np.arange(nlon) * 360.0 / nlon
        self.land, self.orog = _land_and_orography(self.lat, self.lon, c)
        self.ocean = ~self.land
        la, lo = np.meshgrid(self.lat, self.lon, indexing="ij")
        phi = np.deg2rad(self.lat)[:, None]
        cos2, sin_ = np.cos(phi) ** 2, np.sin(phi)
        a, b, c0, d = _box(c.enso_teleconnection_region)
        taper = c.enso_teleconnection_taper_deg
        nino_w = _box_area_weights(self.lat, self.lon, c.nino34_region) * self.ocean
        statics = {
            "tas_base": c.tas_pole_K
            + (c.tas_equator_K - c.tas_pole_K) * cos2
            - c.lapse_rate_K_per_m * self.orog,
            "sst_base": c.sst_pole_K + (c.sst_equator_K - c.sst_pole_K) * cos2,
            "zg_base": c.zg_pole_m + (c.zg_equator_m - c.zg_pole_m) * cos2,
            "sin": sin_,
            "trend": c.trend_equator_K_per_year * (1 + (c.polar_amplification - 1) * sin_**2),
            "enso_sst": c.enso_sst_amplitude_K
            * np.exp(
                -0.5 * ((la - c.enso_pattern_lat) / c.enso_pattern_sigma_lat_deg) ** 2
                - 0.5 * (_periodic(lo - c.enso_pattern_lon) / c.enso_pattern_sigma_lon_deg) ** 2
            ),
            "tele": _box_weight(la, a, b, taper)
            * np.maximum(_box_weight(lo, c0, d, taper), _box_weight(lo + 360.0, c0, d, taper)),
            "zg_trop": np.exp(-0.5 * (phi / np.deg2rad(c.enso_zg_tropical_sigma_lat_deg)) ** 2),
            "nino_w": nino_w / nino_w.sum(),
        }
        if spec.bias is not None:
            statics["bias"] = spec.bias.field(self.lat, self.lon)
        self.f32 = {k: np.asarray(v, dtype=np.float32) for k, v in statics.items()}
        self.missing = _missing_cells(spec, self.lat, self.lon)
        self.calendar_time = None if spec.calendar == CALENDAR else _time_axis(spec)
        self.total = spec.years * self.steps_per_year
        if self.calendar_time is not None:
            self.total = self.calendar_time[0].size
        self.forcing_lead = float(spec.start_year - (spec.forcing_start_year or spec.start_year))
        entropy = [int(seed), 0x5EED] + ([] if spec.stream is None else [int(spec.stream)])
        ss = np.random.SeedSequence(entropy)
        enso_ss, tas_ss, sst_ss, zg_ss = (np.random.default_rng(s) for s in ss.spawn(4))
        rho_atm = np.exp(-self.dt_days / c.atmosphere_memory_days)
        rho_ocn = np.exp(-self.dt_days / c.ocean_memory_days)
        self.enso = _Enso(enso_ss, self.dt_days / 365.0, self.lag, c)
        self.n_tas = _RedSpatialNoise(tas_ss, nlat, nlon, c.noise_length_deg, rho_atm)
        self.n_sst = _RedSpatialNoise(sst_ss, nlat, nlon, c.noise_length_deg, rho_ocn)
        self.n_zg = _RedSpatialNoise(zg_ss, nlat, nlon, c.zg_noise_length_deg, rho_atm)
        self.step = 0

    def days(self, s0: int, s1: int) -> np.ndarray:
        """Days since ``start_year``-01-01 (in the calendar) of steps s0..s1-1, at mid-step."""
        if self.calendar_time is not None:
            return self.calendar_time[0][s0:s1]
        year, k = np.divmod(np.arange(s0, s1), self.steps_per_year)
        if self.freq == "monthly":
            return year * 365.0 + _MONTH_START[k] + _MONTH_DAYS[k] / 2.0
        return year * 365.0 + k + 0.5

    def _years_and_fraction(self, s0: int, s1: int) -> tuple[np.ndarray, np.ndarray]:
        """Years since the forcing started, and fraction of the calendar year (float64)."""
        if self.calendar_time is not None:
            _, years, frac = (a[s0:s1] for a in self.calendar_time)
        else:
            days = self.days(s0, s1)
            years, frac = days / 365.0, days % 365.0 / 365.0
        return (years + self.forcing_lead if self.forcing_lead else years), frac

    def block(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` steps of every time-dependent variable (float32 arrays)."""
        c, s = self.c, self.f32
        years_f64, frac_f64 = self._years_and_fraction(self.step, self.step + n)
        self.step += n
        years = years_f64.astype(np.float32)[:, None, None]
        frac = frac_f64.astype(np.float32)[:, None, None]
        seas_o = (
            c.seasonal_amplitude_ocean_K
            * s["sin"]
            * np.cos(2 * np.pi * (frac - c.seasonal_peak_day_ocean / 365.0))
        )
        seas_l = (
            c.seasonal_amplitude_land_K
            * s["sin"]
            * np.cos(2 * np.pi * (frac - c.seasonal_peak_day_land / 365.0))
        )
        warming = s["trend"] * years
        e_now, e_lag = (e.astype(np.float32)[:, None, None] for e in self.enso.step(n))

        sst_forced = s["sst_base"] + seas_o + warming
        sst_anom = s["enso_sst"] * e_now + c.sst_noise_K * self.n_sst.draw(n)
        width = c.sst_floor_width_K
        raw = (sst_forced + sst_anom - c.freezing_point_K) / width
        sst = c.freezing_point_K + width * np.logaddexp(np.float32(0), raw)
        siconc = 0.5 - 0.5 * np.tanh((sst - c.siconc_half_K) / (2 * c.siconc_width_K))  # logistic
        ocean_tas = c.ocean_to_tas_coupling * sst_anom - c.ice_albedo_tas_K * siconc
        tas = (
            s["tas_base"]
            + np.where(self.land, seas_l, seas_o)
            + warming
            + c.enso_tas_teleconnection_K * s["tele"] * e_lag
            + c.tas_noise_K * self.n_tas.draw(n)
            + np.where(self.ocean, ocean_tas, np.float32(0))
        )
        zg = (
            s["zg_base"]
            + c.zg_thickness_m_per_K * (seas_o + warming)
            + c.enso_zg_tropical_m * s["zg_trop"] * e_now
            + c.enso_zg_teleconnection_m * s["tele"] * e_lag
            + c.zg_noise_m * self.n_zg.draw(n)
        )
        nino34 = ((sst - sst_forced) * s["nino_w"]).sum(axis=(1, 2), dtype=np.float64)
        if "bias" in s:
            tas = tas + s["bias"]
        if self.missing is not None:
            tas = np.where(self.missing, np.float32(np.nan), tas)
        out = {
            "tas": tas,
            "sst": np.where(self.ocean, sst, np.float32(np.nan)),
            "siconc": np.where(self.ocean, siconc, np.float32(np.nan)),
            "zg": zg[:, None],
            "nino34": nino34,
        }
        out = {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
        for name in self.spec.celsius:
            out[name] -= np.float32(KELVIN_TO_CELSIUS)
        return {self.spec.written_name(k): v for k, v in out.items()}


def _missing_cells(spec: ArchiveSpec, lat: np.ndarray, lon: np.ndarray) -> np.ndarray | None:
    """The (lat, lon) cells where tas is NaN, or None when it has no gaps."""
    if not spec.missing_fraction and spec.missing_south_of is None:
        return None
    rng = np.random.default_rng(int(spec.missing_seed))
    missing = rng.random((lat.size, lon.size)) < spec.missing_fraction
    if spec.missing_south_of is not None:
        missing |= (lat < spec.missing_south_of)[:, None]
    return missing


_DIMS = {
    "tas": ("time", "lat", "lon"),
    "sst": ("time", "lat", "lon"),
    "siconc": ("time", "lat", "lon"),
    "zg": ("time", "level", "lat", "lon"),
    "nino34": ("time",),
}
_COORD_ATTRS = {
    "time": {"standard_name": "time", "long_name": "time", "axis": "T"},
    "lat": {
        "units": "degrees_north",
        "standard_name": "latitude",
        "long_name": "latitude",
        "axis": "Y",
    },
    "lon": {
        "units": "degrees_east",
        "standard_name": "longitude",
        "long_name": "longitude",
        "axis": "X",
    },
    "level": {
        "units": "hPa",
        "standard_name": "air_pressure",
        "long_name": "pressure level",
        "positive": "down",
        "axis": "Z",
    },
}


def _var_attrs(name: str, spec: ArchiveSpec | None = None) -> dict[str, str]:
    units, standard_name, long_name, component = _VAR_ATTRS[name]
    if spec is not None and name in spec.celsius:
        units = "degC"
    attrs = {"units": units, "standard_name": standard_name, "long_name": long_name}
    attrs["component"] = component
    if name in ("tas", "sst", "siconc", "zg"):
        attrs["cell_methods"] = "time: mean"
    return attrs


def _global_attrs(spec: ArchiveSpec) -> dict:
    years, grid, freq, seed, start_year = (
        spec.years,
        spec.grid,
        spec.freq,
        spec.seed,
        spec.start_year,
    )
    coeffs = spec.coeffs.to_dict()
    attrs: dict = {
        "Conventions": "CF-1.8",
        "title": "ClimaTune synthetic coupled climate archive",
        "source": f"climatune {__version__} synthetic generator (climatune.data.synthetic)",
        "history": f"generated by climatune.data.synthetic: years={years}, "
        f"grid={grid[0]}x{grid[1]}, freq={freq}, seed={seed}, start_year={start_year}",
        "frequency": "mon" if freq == "monthly" else "day",
        "calendar": spec.calendar,
        "seed": int(seed),
        "start_year": int(start_year),
        "years": int(years),
        "coupling_coefficients": json.dumps(coeffs, sort_keys=True),
        "enso_teleconnection_lag_steps": _lag_steps(freq, spec.coeffs),
    }
    attrs.update(coeffs)
    attrs.update(spec.attrs)
    return attrs


def _dataset(gen: _Generator, days: np.ndarray, data: dict[str, Any], attrs: dict) -> xr.Dataset:
    """Assemble the CF dataset (time still numeric, with ``units`` and ``calendar``)."""
    spec = gen.spec
    ds = xr.Dataset(
        {
            spec.written_name(name): (
                _DIMS[name],
                data[spec.written_name(name)],
                _var_attrs(name, spec),
            )
            for name in _DIMS
        },
        coords={"time": days, "level": [500.0], "lat": gen.lat, "lon": gen.lon},
        attrs=attrs,
    )
    ds["orography"] = (("lat", "lon"), gen.orog.astype(np.float32), _var_attrs("orography"))
    for name, coord_attrs in _COORD_ATTRS.items():
        ds[name].attrs.update(coord_attrs)
    ds["time"].attrs.update(units=f"days since {gen.start_year:04d}-01-01", calendar=spec.calendar)
    return ds


def _block_steps(grid: tuple[int, int], steps_per_year: int) -> tuple[int, int]:
    """(Zarr time chunk, steps per generated block): a year per chunk if it fits."""
    cells = grid[0] * grid[1]
    chunk = steps_per_year if steps_per_year * cells <= _CHUNK_CELLS else _CHUNK_CELLS // cells
    chunk = max(1, chunk)
    return chunk, max(1, _BLOCK_CELLS // (cells * chunk)) * chunk


def check_spec(spec: ArchiveSpec) -> None:
    """Raise a :class:`ClimatuneError` if ``spec`` cannot be written."""
    _check_args(spec.years, spec.grid, spec.freq, spec.seed, spec.start_year)
    if spec.calendar not in CALENDARS:
        raise ClimatuneError(
            f"calendar {spec.calendar!r} is not supported; choose one of {', '.join(CALENDARS)}"
        )
    unknown = sorted(set(spec.names) - set(_DIMS))
    if unknown:
        raise ClimatuneError(f"cannot rename {unknown}: the archive's variables are {list(_DIMS)}")
    if not set(spec.celsius) <= {"tas", "sst"}:
        raise ClimatuneError(f"only tas and sst can be written in degC, not {sorted(spec.celsius)}")


def _prepare(spec: ArchiveSpec) -> tuple[_Generator, int, int, int]:
    check_spec(spec)
    gen = _Generator(spec)
    chunk, per_block = _block_steps(_check_grid(spec.grid), gen.steps_per_year)
    return gen, gen.total, chunk, per_block


def synthetic_dataset(
    years: int,
    grid: tuple[int, int] = (64, 128),
    freq: str = "monthly",
    seed: int = 0,
    start_year: int = 1950,
    *,
    spec: ArchiveSpec | None = None,
) -> xr.Dataset:
    """Generate the synthetic archive in memory (for tests and small archives).

    Returns the arrays :func:`write_synthetic` writes for the same arguments (or
    :func:`write_archive` for ``spec``, which then replaces the other arguments), with
    time decoded to cftime objects.
    """
    if spec is None:
        spec = ArchiveSpec(years, grid, freq, seed, start_year)
    gen, total, _, per_block = _prepare(spec)
    blocks = [gen.block(min(per_block, total - s0)) for s0 in range(0, total, per_block)]
    data = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    ds = _dataset(gen, gen.days(0, total), data, _global_attrs(spec))
    return xr.decode_cf(ds, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


def write_synthetic(
    out: str | Path,
    years: int,
    grid: tuple[int, int] = (64, 128),
    freq: str = "monthly",
    seed: int = 0,
    start_year: int = 1950,
) -> Path:
    """Write the synthetic coupled climate archive to the Zarr store ``out``.

    The store's layout is created first, then filled block by block, so memory does not
    grow with ``years``; it is written atomically: nothing is left at ``out`` on failure.

    Parameters
    ----------
    out : path of the Zarr store; it must not exist yet.
    years : number of years, 1..2000.
    grid : (nlat, nlon), from 8x16 to 1800x3600.
    freq : ``"monthly"`` (mid-month stamps) or ``"daily"`` (12:00); calendar ``noleap``.
    seed : random seed; the same seed gives identical data.
    start_year : first year of the archive.

    Returns
    -------
    Path
        ``out``.
    """
    return write_archive(out, ArchiveSpec(years, grid, freq, seed, start_year))


def write_archive(out: str | Path, spec: ArchiveSpec) -> Path:
    """Write the archive ``spec`` describes to the new Zarr store ``out``, atomically.

    Returns
    -------
    Path
        ``out``.
    """
    out = check_new_path(out)
    check_spec(spec)
    with atomic_path(out, overwrite=False) as tmp:
        fill_store(tmp, spec)
    return out


def fill_store(path: Path, spec: ArchiveSpec) -> None:
    """Write the archive ``spec`` describes to ``path`` (not atomic: see write_archive)."""
    import dask.array as da
    import zarr

    gen, total, chunk, per_block = _prepare(spec)
    nlat, nlon = gen.lat.size, gen.lon.size
    shapes = {"tas": (nlat, nlon), "sst": (nlat, nlon), "siconc": (nlat, nlon)}
    shapes.update(zg=(1, nlat, nlon), nino34=())
    shapes = {spec.written_name(name): shape for name, shape in shapes.items()}
    chunks = {name: (chunk, *shape) for name, shape in shapes.items()}
    chunks[spec.written_name("nino34")] = (min(per_block, total),)  # blocks write whole chunks
    lazy = {
        name: da.empty((total, *shape), chunks=chunks[name], dtype=np.float32)
        for name, shape in shapes.items()
    }
    template = _dataset(gen, gen.days(0, total), lazy, _global_attrs(spec))
    encoding: dict = {name: {"chunks": chunks[name]} for name in shapes}
    encoding.update({name: {"_FillValue": None} for name in ("time", "lat", "lon", "level")})
    template.to_zarr(path, mode="w", compute=False, encoding=encoding, zarr_format=2)
    group = zarr.open_group(str(path), mode="r+")
    for s0 in range(0, total, per_block):
        n = min(per_block, total - s0)
        for name, values in gen.block(n).items():
            group[name][s0 : s0 + n] = values
