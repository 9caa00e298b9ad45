"""Row filters for file and bundled sources: a small expression language, parsed and checked, never evaluated.

The syntax is that of pandas' ``DataFrame.query`` for what a filter needs, so existing filters keep working:

    age >= 30 and workclass in ["Private", "State-gov"]
    not (hours_per_week < 10 or `native country`.isna())
    1 < target <= 4

Allowed: column names (backticks around names with spaces), literals (numbers, strings, True, False, None),
lists or tuples of literals, comparisons (``== != < <= > >=``, ``in``, ``not in``, chained), ``and``, ``or``,
``not`` (and their pandas spellings ``& | ~``), parentheses, and ``column.isna()`` / ``.notna()`` /
``.isnull()`` / ``.notnull()``. Python's own parser (``ast``) reads the text; every node of the tree is then
checked against that list and the filter is computed from the tree with pandas operations. Nothing in it
is ever handed to ``eval``, ``DataFrame.query`` or ``DataFrame.eval``: an attribute, a call, a subscript or
any other construct is refused with one line naming it.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from trainflow.errors import DataError

MAX_FILTER_CHARS = 2_000
NULL_TESTS = {"isna": True, "isnull": True, "notna": False, "notnull": False}
COMPARISONS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
               ast.Gt: operator.gt, ast.GtE: operator.ge}
_BACKTICKED = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class RowFilter:
    """A checked row filter: ``apply(df)`` keeps the rows it selects."""

    text: str
    tree: ast.expr
    quoted: dict[str, str]  # placeholder identifier -> column name written in backticks

    @property
    def columns(self) -> set[str]:
        """The columns the filter reads."""
        return {self.quoted.get(n.id, n.id) for n in ast.walk(self.tree) if isinstance(n, ast.Name)}

    def apply(self, data: pd.DataFrame | pa.Table, dataset: str) -> pd.DataFrame | pa.Table:
        """The rows of ``data`` the filter selects (a new frame or table; ``data`` is unchanged). An Arrow
        table's filter columns alone go through pandas.

        Raises:
            DataError: A column the data lacks, or a comparison its values do not support.
        """
        if isinstance(data, pa.Table):
            present = [c for c in data.column_names if c in self.columns]
            keep = self._keep(data.select(present).to_pandas(), data.column_names, dataset)
            return data.filter(pa.array(keep.to_numpy()))
        return data[self._keep(data, data.columns, dataset)]

    def _keep(self, df: pd.DataFrame, names: list, dataset: str) -> pd.Series:
        missing = sorted(self.columns - set(map(str, names)))
        if missing:
            raise DataError(dataset, f"row filter {_short(self.text)} names columns the data lacks: "
                                     f"{', '.join(map(repr, missing))}", rule="query")
        try:
            mask = _mask(self.tree, df, self.quoted)
        except (TypeError, ValueError) as exc:
            raise DataError(dataset, f"row filter {_short(self.text)} cannot be computed on these values: "
                                     f"{_short(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}",
                            rule="query") from exc
        if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask):
            raise DataError(dataset, f"row filter {_short(self.text)} does not give true or false per row",
                            rule="query")
        return mask.fillna(False).astype(bool)


def parse_filter(text: str, dataset: str) -> RowFilter:
    """Parse and check a row filter; refuse anything but the constructs the module docstring lists.

    Raises:
        DataError: The text is not a filter of the allowed form (naming the first construct refused).
    """
    if len(text) > MAX_FILTER_CHARS:
        raise DataError(dataset, f"row filter is {len(text):,} characters; at most {MAX_FILTER_CHARS:,}",
                        rule="query")
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        name = f"__column_{len(quoted)}"
        quoted[name] = match.group(1)
        return name

    try:
        tree = ast.parse(_BACKTICKED.sub(placeholder, text).strip(), mode="eval").body
    except SyntaxError as exc:
        raise DataError(dataset, f"row filter {_short(text)} is not an expression: {exc.msg}", rule="query") from exc
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        refused = _refused(node, id(node) in called)
        if refused:
            raise DataError(dataset, f"row filter {_short(text)}: {refused} is not allowed (columns, literals, "
                                     "comparisons, in, and/or/not, .isna()/.notna())", rule="query")
    return RowFilter(text, tree, quoted)


def apply_filter(data: pd.DataFrame | pa.Table, text: str | None, dataset: str) -> pd.DataFrame | pa.Table:
    """``data`` filtered by ``text`` (unchanged when there is no filter)."""
    return parse_filter(text, dataset).apply(data, dataset) if text else data


def _refused(node: ast.AST, called: bool) -> str | None:
    """What is wrong with one node (``called``: it is the function of a call), or None when it is allowed."""
    if isinstance(node, (ast.BoolOp, ast.And, ast.Or, ast.Not, ast.Invert, ast.USub, ast.UAdd, ast.BitAnd,
                         ast.BitOr, ast.In, ast.NotIn, ast.Load, *COMPARISONS)):
        return None
    if isinstance(node, ast.Name):
        return None if node.id.isidentifier() else f"the name {node.id!r}"
    if isinstance(node, ast.Constant):
        ok = node.value is None or isinstance(node.value, (bool, int, float, str))
        return None if ok else f"the literal {_short(repr(node.value))}"
    if isinstance(node, ast.Compare):
        return None
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.USub, ast.UAdd)) and not isinstance(node.operand, ast.Constant):
            return "a sign before anything but a number"
        return None
    if isinstance(node, ast.BinOp):
        return None if isinstance(node.op, (ast.BitAnd, ast.BitOr)) else f"the operator {type(node.op).__name__}"
    if isinstance(node, (ast.List, ast.Tuple)):
        literal = all(isinstance(e, ast.Constant) or (isinstance(e, ast.UnaryOp) and isinstance(e.operand,
                      ast.Constant)) for e in node.elts)
        return None if literal else "a list of anything but literals"
    if isinstance(node, ast.Call):
        f = node.func
        ok = (isinstance(f, ast.Attribute) and f.attr in NULL_TESTS and isinstance(f.value, ast.Name)
              and not node.args and not node.keywords)
        return None if ok else "a call other than column.isna() or column.notna()"
    if isinstance(node, ast.Attribute):
        ok = called and node.attr in NULL_TESTS and isinstance(node.value, ast.Name)
        return None if ok else f"the attribute .{_short(node.attr, 40)[1:-1]}"
    return f"a {type(node).__name__} expression"


def _value(node: ast.expr, df: pd.DataFrame, quoted: dict[str, str]) -> Any:
    if isinstance(node, ast.Name):
        return df[quoted.get(node.id, node.id)]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _value(node.operand, df, quoted)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e, df, quoted) for e in node.elts]
    if isinstance(node, (ast.BoolOp, ast.BinOp, ast.Compare, ast.Call, ast.UnaryOp)):
        return _mask(node, df, quoted)
    raise ValueError(f"a {type(node).__name__} is not a value")  # never reached: parse_filter refuses it


def _mask(node: ast.expr, df: pd.DataFrame, quoted: dict[str, str]) -> Any:
    if isinstance(node, ast.BoolOp) or (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr))):
        parts = node.values if isinstance(node, ast.BoolOp) else [node.left, node.right]
        both = isinstance(node.op, (ast.And, ast.BitAnd))
        masks = [_bool(_mask(p, df, quoted)) for p in parts]
        out = masks[0]
        for m in masks[1:]:
            out = (out & m) if both else (out | m)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
        return ~_bool(_mask(node.operand, df, quoted))
    if isinstance(node, ast.Compare):
        out, left = None, _value(node.left, df, quoted)
        for op, right_node in zip(node.ops, node.comparators):
            right = _value(right_node, df, quoted)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(left, pd.Series) or not isinstance(right, list):
                    raise ValueError("'in' needs a column on the left and a list of literals on the right")
                part = left.isin(right)
                part = ~part if isinstance(op, ast.NotIn) else part
            else:
                part = COMPARISONS[type(op)](left, right)
            if not isinstance(part, pd.Series):
                raise ValueError("a comparison between two literals")
            out = part if out is None else out & part
            left = right
        return out
    if isinstance(node, ast.Call):  # column.isna() and friends, checked by _refused
        column = _value(node.func.value, df, quoted)
        return column.isna() if NULL_TESTS[node.func.attr] else column.notna()
    return _value(node, df, quoted)


def _bool(mask: Any) -> pd.Series:
    if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask):
        raise ValueError("and/or/not need a condition on each side; with & or |, put each comparison in parentheses")
    return mask.fillna(False).astype(bool)


def _short(text: str, limit: int = 120) -> str:
    """A value quoted for an error line, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
