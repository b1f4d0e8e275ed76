"""Settings for every suite.

Hypothesis: no per-example deadline and no "too slow" health check. Both measure wall time, which another process
on a loaded machine (CI has 2 cores) can stretch at will; a test here fails for what the code does, never for how
fast the machine is. (The number of examples is each fuzz test's own; ``HYPOTHESIS_PROFILE=long`` raises it.)
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("any-speed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("any-speed")
