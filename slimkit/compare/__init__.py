"""``slimkit compare``: the paper's table on one dataset (:mod:`~slimkit.compare.run`), drawn
as a table and a popularity figure (:mod:`~slimkit.compare.display`)."""

from slimkit.compare.display import draw_popularity, table
from slimkit.compare.run import (
    METHODS,
    CompareResult,
    add_differences,
    add_improvements,
    parse_list,
    plan,
    run_compare,
)

__all__ = ["METHODS", "CompareResult", "add_differences", "add_improvements", "draw_popularity", "parse_list", "plan", "run_compare", "table"]
