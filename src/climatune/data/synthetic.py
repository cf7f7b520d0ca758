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

Examples
--------
>>> ds = synthetic_dataset(years=1, grid=(8, 16))
>>> sorted(ds.data_vars)
['nino34', 'orography', 'siconc', 'sst', 'tas', 'zg']
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter1d

from climatune import __version__
from climatune.errors import ClimatuneError
from climatune.utils.atomic import atomic_path, check_new_path

__all__ = ["Coefficients", "COEFFICIENTS", "parse_grid", "write_synthetic", "synthetic_dataset"]

MIN_GRID = (8, 16)
MAX_GRID = (1800, 3600)
MAX_YEARS = 2000
FREQS = ("monthly", "daily")
CALENDAR = "noleap"
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


def _land_and_orography(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed smooth continents: super-ellipses whose coasts are wobbled by a few low-order
    harmonics from a fixed seed, plus Antarctica; returns (land, orography)."""
    c = COEFFICIENTS
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

    def __init__(self, rng: np.random.Generator, dt_years: float, lag: int) -> None:
        c = COEFFICIENTS
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


def _lag_steps(freq: str) -> int:
    """The ENSO teleconnection lag in time steps of ``freq``."""
    per_year = 12 if freq == "monthly" else 365
    return int(round(COEFFICIENTS.enso_teleconnection_lag_months * per_year / 12))


class _Generator:
    """Streams the archive block by block; all state for continuity lives here."""

    def __init__(self, grid: tuple[int, int], freq: str, seed: int, start_year: int) -> None:
        c = COEFFICIENTS
        nlat, nlon = grid
        self.freq, self.start_year = freq, start_year
        self.steps_per_year = 12 if freq == "monthly" else 365
        self.dt_days = 365.0 / self.steps_per_year
        self.lag = _lag_steps(freq)
        self.lat = -90.0 + (np.arange(nlat) + 0.5) * 180.0 / nlat
        self.lon = np.arange(nlon) * 360.0 / nlon
        self.land, self.orog = _land_and_orography(self.lat, self.lon)
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
        self.f32 = {k: np.asarray(v, dtype=np.float32) for k, v in statics.items()}
        ss = np.random.SeedSequence([int(seed), 0x5EED])
        enso_ss, tas_ss, sst_ss, zg_ss = (np.random.default_rng(s) for s in ss.spawn(4))
        rho_atm = np.exp(-self.dt_days / c.atmosphere_memory_days)
        rho_ocn = np.exp(-self.dt_days / c.ocean_memory_days)
        self.enso = _Enso(enso_ss, self.dt_days / 365.0, self.lag)
        self.n_tas = _RedSpatialNoise(tas_ss, nlat, nlon, c.noise_length_deg, rho_atm)
        self.n_sst = _RedSpatialNoise(sst_ss, nlat, nlon, c.noise_length_deg, rho_ocn)
        self.n_zg = _RedSpatialNoise(zg_ss, nlat, nlon, c.zg_noise_length_deg, rho_atm)
        self.step = 0

    def days(self, s0: int, s1: int) -> np.ndarray:
        """Days since ``start_year``-01-01 (noleap) of steps s0..s1-1, at mid-step."""
        year, k = np.divmod(np.arange(s0, s1), self.steps_per_year)
        if self.freq == "monthly":
            return year * 365.0 + _MONTH_START[k] + _MONTH_DAYS[k] / 2.0
        return year * 365.0 + k + 0.5

    def block(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` steps of every time-dependent variable (float32 arrays)."""
        c, s = COEFFICIENTS, self.f32
        days = self.days(self.step, self.step + n)
        self.step += n
        years = (days / 365.0).astype(np.float32)[:, None, None]
        frac = (days % 365.0 / 365.0).astype(np.float32)[:, None, None]
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
        out = {
            "tas": tas,
            "sst": np.where(self.ocean, sst, np.float32(np.nan)),
            "siconc": np.where(self.ocean, siconc, np.float32(np.nan)),
            "zg": zg[:, None],
            "nino34": nino34,
        }
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


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


def _var_attrs(name: str) -> dict[str, str]:
    units, standard_name, long_name, component = _VAR_ATTRS[name]
    attrs = {"units": units, "standard_name": standard_name, "long_name": long_name}
    attrs["component"] = component
    if name in ("tas", "sst", "siconc", "zg"):
        attrs["cell_methods"] = "time: mean"
    return attrs


def _global_attrs(years: int, grid: tuple[int, int], freq: str, seed: int, start_year: int) -> dict:
    coeffs = COEFFICIENTS.to_dict()
    attrs: dict = {
        "Conventions": "CF-1.8",
        "title": "ClimaTune synthetic coupled climate archive",
        "source": f"climatune {__version__} synthetic generator (climatune.data.synthetic)",
        "history": f"generated by climatune.data.synthetic: years={years}, "
        f"grid={grid[0]}x{grid[1]}, freq={freq}, seed={seed}, start_year={start_year}",
        "frequency": "mon" if freq == "monthly" else "day",
        "calendar": CALENDAR,
        "seed": int(seed),
        "start_year": int(start_year),
        "years": int(years),
        "coupling_coefficients": json.dumps(coeffs, sort_keys=True),
        "enso_teleconnection_lag_steps": _lag_steps(freq),
    }
    attrs.update(coeffs)
    return attrs


def _dataset(gen: _Generator, days: np.ndarray, data: dict[str, Any], attrs: dict) -> xr.Dataset:
    """Assemble the CF dataset (time still numeric, with ``units`` and ``calendar``)."""
    ds = xr.Dataset(
        {name: (_DIMS[name], data[name], _var_attrs(name)) for name in _DIMS},
        coords={"time": days, "level": [500.0], "lat": gen.lat, "lon": gen.lon},
        attrs=attrs,
    )
    ds["orography"] = (("lat", "lon"), gen.orog.astype(np.float32), _var_attrs("orography"))
    for name, coord_attrs in _COORD_ATTRS.items():
        ds[name].attrs.update(coord_attrs)
    ds["time"].attrs.update(units=f"days since {gen.start_year:04d}-01-01", calendar=CALENDAR)
    return ds


def _block_steps(grid: tuple[int, int], steps_per_year: int) -> tuple[int, int]:
    """(Zarr time chunk, steps per generated block): a year per chunk if it fits."""
    cells = grid[0] * grid[1]
    chunk = steps_per_year if steps_per_year * cells <= _CHUNK_CELLS else _CHUNK_CELLS // cells
    chunk = max(1, chunk)
    return chunk, max(1, _BLOCK_CELLS // (cells * chunk)) * chunk


def _prepare(
    years: int, grid: tuple[int, int], freq: str, seed: int, start_year: int
) -> tuple[_Generator, int, int, int]:
    _check_args(years, grid, freq, seed, start_year)
    gen = _Generator(_check_grid(grid), freq, seed, start_year)
    chunk, per_block = _block_steps(_check_grid(grid), gen.steps_per_year)
    return gen, years * gen.steps_per_year, chunk, per_block


def synthetic_dataset(
    years: int,
    grid: tuple[int, int] = (64, 128),
    freq: str = "monthly",
    seed: int = 0,
    start_year: int = 1950,
) -> xr.Dataset:
    """Generate the synthetic archive in memory (for tests and small archives).

    Returns the arrays :func:`write_synthetic` writes for the same arguments, with time
    decoded to cftime objects.
    """
    gen, total, _, per_block = _prepare(years, grid, freq, seed, start_year)
    blocks = [gen.block(min(per_block, total - s0)) for s0 in range(0, total, per_block)]
    data = {name: np.concatenate([b[name] for b in blocks]) for name in _DIMS}
    attrs = _global_attrs(years, _check_grid(grid), freq, seed, start_year)
    ds = _dataset(gen, gen.days(0, total), data, attrs)
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
    import dask.array as da
    import zarr

    out = check_new_path(out)
    gen, total, chunk, per_block = _prepare(years, grid, freq, seed, start_year)
    nlat, nlon = gen.lat.size, gen.lon.size
    shapes = {"tas": (nlat, nlon), "sst": (nlat, nlon), "siconc": (nlat, nlon)}
    shapes.update(zg=(1, nlat, nlon), nino34=())
    chunks = {name: (chunk, *shape) for name, shape in shapes.items()}
    chunks["nino34"] = (min(per_block, total),)  # each block writes whole chunks
    lazy = {
        name: da.empty((total, *shape), chunks=chunks[name], dtype=np.float32)
        for name, shape in shapes.items()
    }
    attrs = _global_attrs(years, (nlat, nlon), freq, seed, start_year)
    template = _dataset(gen, gen.days(0, total), lazy, attrs)
    encoding: dict = {name: {"chunks": chunks[name]} for name in shapes}
    encoding.update({name: {"_FillValue": None} for name in ("time", "lat", "lon", "level")})
    with atomic_path(out, overwrite=False) as tmp:
        template.to_zarr(tmp, mode="w", compute=False, encoding=encoding, zarr_format=2)
        group = zarr.open_group(str(tmp), mode="r+")
        for s0 in range(0, total, per_block):
            n = min(per_block, total - s0)
            for name, values in gen.block(n).items():
                group[name][s0 : s0 + n] = values
    return out
