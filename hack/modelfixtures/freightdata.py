"""The synthetic freight dataset the fixtures are trained on.

It follows the generative process of docs/model.md (twelve features, a late-arrival label), drawn
with numpy instead of the Go generator, and adds what the fixture models need beyond it: the
transport mode as a category id, a three-class delay grade, delay hours for the regressors, and
feeds that drop values (NaN) the way real carrier and weather feeds do.
"""

import numpy as np

FEATURES = [
    "distance_km",
    "mode_ocean",
    "mode_air",
    "mode_rail",
    "mode_road",
    "carrier_on_time_rate",
    "port_congestion_index",
    "weather_severity",
    "month_sin",
    "month_cos",
    "customs_complexity",
    "dwell_time_hours",
]

# The columns of the PyTorch net's numeric input: every feature but the one-hot mode, which the
# net takes as a category id through an embedding.
NUMERIC_FEATURES = [f for f in FEATURES if not f.startswith("mode_")]

MODES = ["ocean", "air", "rail", "road"]

# Delay grades of the multiclass models, in label order.
GRADES = ["on_time", "minor_delay", "major_delay"]


class Freight:
    """n shipment legs: X (n×12, float32, raw values as ingestion sends them) and the targets."""

    def __init__(self, X, mode, late, grade, delay_hours, risk):
        self.X = X
        self.mode = mode
        self.late = late
        self.grade = grade
        self.delay_hours = delay_hours
        self.risk = risk

    def numeric(self):
        """The numeric input of the PyTorch net: X without the one-hot mode columns."""
        keep = [FEATURES.index(f) for f in NUMERIC_FEATURES]
        return self.X[:, keep]

    def rows(self, sl):
        return Freight(self.X[sl], self.mode[sl], self.late[sl], self.grade[sl],
                       self.delay_hours[sl], self.risk[sl])


def generate(n, seed, missing=0.0):
    """Draws n legs. missing is the share of carrier and weather readings that are NaN."""
    rng = np.random.Generator(np.random.PCG64(seed))
    u = rng.random(n)
    mode = np.select([u < 0.35, u < 0.50, u < 0.70], [0, 1, 2], 3)
    median = np.array([9000, 5500, 1100, 450.0])[mode]
    spread = np.array([0.45, 0.5, 0.5, 0.6])[mode]
    distance = median * np.exp(spread * rng.standard_normal(n))
    on_time = 0.97 - 0.35 * rng.random(n) ** 2.5
    month = rng.integers(0, 12, n)
    angle = 2 * np.pi * month / 12
    winter = (np.cos(angle) + 1) / 2
    weather = np.clip(0.15 + 0.35 * winter * rng.random(n) + 0.5 * rng.random(n) ** 4, 0, 1)
    congestion = np.clip(rng.random(n) ** 1.6 * np.array([1, 0.5, 0.6, 0.3])[mode], 0, 1)
    customs = np.clip(np.array([0.55, 0.5, 0.3, 0.15])[mode] + 0.25 * rng.standard_normal(n), 0, 1)
    dwell = np.exp(2.3 + 1.2 * congestion + 0.8 * customs + 0.35 * rng.standard_normal(n)) \
        + np.array([24, 4, 12, 2.0])[mode]

    X = np.zeros((n, 12))
    X[:, 0] = distance
    X[np.arange(n), 1 + mode] = 1
    X[:, 5] = on_time
    X[:, 6] = congestion
    X[:, 7] = weather
    X[:, 8] = np.sin(angle)
    X[:, 9] = np.cos(angle)
    X[:, 10] = customs
    X[:, 11] = dwell

    w_mode = np.array([0.6, 1.4, 0.8, 1.0])[mode]
    logit = (-3.3 + 0.35 * np.log(distance / 1000) + np.array([0.5, -0.6, 0.2, 0])[mode]
             + 9 * (0.9 - on_time) + 2.4 * congestion ** 2 + 3.2 * weather ** 2 * w_mode
             + 1.3 * customs + 0.012 * dwell + 0.4 * winter)
    risk = 1 / (1 + np.exp(-logit))
    late = rng.random(n) < risk
    # The grade orders legs by a noisy version of the same logit: late legs split into minor and
    # major delays, and how late depends on the leg's risk and length.
    severity = logit + rng.logistic(size=n)
    grade = np.where(~late, 0, np.where(severity > 1.0, 2, 1))
    delay_hours = np.where(late, np.exp(1.5 + 0.6 * np.clip(severity, -3, 4)
                                        + 0.2 * np.log(distance / 1000)), 0.0)

    if missing > 0:
        # Feeds drop values: a carrier without a punctuality record, a weather service timeout.
        for col in (5, 7):
            X[rng.random(n) < missing, col] = np.nan
    return Freight(X.astype(np.float32), mode.astype(np.int64), late.astype(np.int64),
                   grade.astype(np.int64), delay_hours.astype(np.float32), risk)
