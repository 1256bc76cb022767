"""The comparison: three families, one budget, one evaluation, one report."""

from trilemma.compare.runner import ComparisonInterrupted, run_comparison
from trilemma.compare.settings import CompareSettings, parse_families, parse_priorities, preset

__all__ = ["CompareSettings", "ComparisonInterrupted", "parse_families", "parse_priorities",
           "preset", "run_comparison"]
