"""Tables: CSV files read, typed and encoded for the families (`trilemma.tables.dataset`), their
baselines and their metrics."""

TABLE_SUFFIXES = (".csv",)
TABLE_OPTIONS = ("target", "columns", "encoding", "numeric")  # the data spec's options for a table
NUMERIC_TRANSFORMS = ("quantile", "mode-specific")  # how numbers and dates are encoded (`codec`)
